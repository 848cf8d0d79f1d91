//! The operator view at scale: the binary holds 15,000 raw connections in
//! 1,500 rooms (this test holds the clients: the open-file limit is per
//! process), ten of the rooms busy at different rates, and the page is
//! open in Chromium: it shows the 15,000, the top 50 rooms by members and
//! the busy rooms by rate in order; its first render and every update
//! render in under 200 ms; every update is under 64 KB. The screenshot is
//! docs/admin.png when `DOCS_SCREENSHOTS=1` (how that file was made).
//! The throughput cost of an open view is a bench: `benches/admin.sh`.
//!
//! Needs Debian's chromium and `npm ci` in tests/browser: tests/run.sh
//! installs them.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const KEY: &str = "0123456789abcdef-scale-key";
const CONNS: usize = 15_000;
const ROOMS: usize = 1_500;
/// Rooms `r0`…`r9` are busy: `r<k>` gets k + 1 messages a second.
const BUSY: usize = 10;

/// A chat message from a client (masked, as clients must).
fn message(text: &str) -> Vec<u8> {
    common::encode_client_frame(true, 0x1, text.as_bytes(), true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_view_stays_quick_with_15000_connections() {
    common::raise_nofile((CONNS + 1000) as u64);
    let dir = tempfile::tempdir().unwrap();
    let scripts = common::repo_scripts();
    let cap = (CONNS + 100).to_string();
    let (mut child, addr, _) = common::spawn_binary(
        &["--scripts", scripts.to_str().unwrap()],
        &[
            ("ROOMCAST_API__KEY", KEY),
            ("ROOMCAST_LIMITS__MAX_CONNECTIONS", cap.as_str()),
            ("ROOMCAST_LIMITS__RATE__MESSAGES_PER_SECOND", "0"),
        ],
        dir.path(),
    )
    .await;
    let addr: SocketAddr = addr.parse().unwrap();

    // Connect everyone, 200 at a time; they never read (what the server
    // sends them is a few KB each: the kernel's buffers hold it).
    let targets = (0..CONNS).map(|i| (format!("/chat/r{}", i % ROOMS), None));
    let mut streams: Vec<TcpStream> = common::raw_upgrades(addr, targets).await;
    // The first BUSY streams are in r0…r9: they talk.
    let mut talkers: Vec<TcpStream> = streams.drain(..BUSY).collect();
    let talking = tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            for (k, s) in talkers.iter_mut().enumerate() {
                for _ in 0..=k {
                    s.write_all(&message("busy")).await.unwrap();
                }
            }
        }
    });

    let shot = if std::env::var_os("DOCS_SCREENSHOTS").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/admin.png")
    } else {
        dir.path().join("admin.png")
    };
    let target = format!("{addr} {KEY} {} {CONNS} {BUSY}", shot.display());
    let report = common::sio::run_script(
        "admin_scale.mjs",
        addr,
        "scale",
        "operator view at scale works",
        |what| {
            let target = target.clone();
            async move {
                assert_eq!(what, "target");
                target
            }
        },
    )
    .await;
    // The page's own measurements, for the log (the script checked them).
    for line in report.lines().filter(|l| l.starts_with("figures ")) {
        println!("{line}");
    }
    talking.abort();
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"));
    drop(streams);
    child.kill().await.unwrap();
}
