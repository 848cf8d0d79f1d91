//! In headless Chromium driven by playwright-core: the seed tutorial's browser
//! pages — all four, the socket.io one included — work against roomcast
//! unchanged (only the URL differs), and roomcast's own web client (`GET /`)
//! chats, stays safe, and survives restarts.
//!
//! Needs Debian's chromium and `npm ci` in tests/browser: tests/run.sh installs both.

mod common;

use std::path::Path;
use std::time::Duration;

use common::TestServer;

/// The directory of the browser scripts, once their tools are in place.
fn browser_dir() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core missing: run tests/run.sh (npm ci --prefix tests/browser)"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium missing: run tests/run.sh (apt-get install chromium)"
    );
    dir
}

/// Run a browser script; its output must end with `done`.
async fn node(script: &str, args: &[&std::ffi::OsStr], done: &str) {
    let run = tokio::process::Command::new("node")
        .arg(browser_dir().join(script))
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("browser test finishes")
        .expect("node runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    assert!(report.contains(done), "{report}");
}

/// The echo, shout and chat pages from the seed, in a real browser.
#[tokio::test]
async fn seed_pages_work_in_chromium() {
    let srv = TestServer::start_default().await;
    let addr = srv.addr.to_string();
    node("seed_pages.mjs", &[addr.as_ref()], "all seed pages work").await;
    srv.stop().await;
}

/// The seed's socket.io chat page, with socket.io-client 2.0.3 beside it,
/// opened from a file (`Origin: null`) and from another origin: enter lines in
/// blue, a message on both pages, the leave line in red, over polling then
/// WebSocket, with CORS and credentials.
#[tokio::test]
async fn seed_socketio_page_works_in_chromium() {
    let srv = TestServer::start_default().await;
    let addr = srv.addr.to_string();
    node(
        "seed_socketio.mjs",
        &[addr.as_ref()],
        "the socket.io seed page works",
    )
    .await;
    srv.stop().await;
}

/// The web client at `/`: two pages chat (enter lines blue, leave lines red,
/// a live member list), markup stays text and runs nothing, a connection cut
/// under it resumes (nothing shown twice, no resume failure), and a server
/// restart shows "reconnecting" and then recovers. The script runs the real
/// binary itself, since it stops and restarts it.
#[tokio::test]
async fn web_client_works_in_chromium() {
    let shots = tempfile::tempdir().unwrap();
    let shot = shots.path().join("web-client.png");
    node(
        "web_client.mjs",
        &[env!("CARGO_BIN_EXE_roomcast").as_ref(), shot.as_os_str()],
        "web client works",
    )
    .await;
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
}
