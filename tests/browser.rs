//! The seed tutorial's browser pages work against roomcast unchanged (only the
//! URL differs), in headless Chromium driven by playwright-core.
//!
//! Needs Debian's chromium and `npm ci` in tests/browser: tests/run.sh installs both.

mod common;

use std::path::Path;
use std::time::Duration;

use common::TestServer;

/// The echo, shout and chat pages from the seed, in a real browser.
#[tokio::test]
async fn seed_pages_work_in_chromium() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core missing: run tests/run.sh (npm ci --prefix tests/browser)"
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium missing: run tests/run.sh (apt-get install chromium)"
    );
    let srv = TestServer::start_default().await;
    let run = tokio::process::Command::new("node")
        .arg(dir.join("seed_pages.mjs"))
        .arg(srv.addr.to_string())
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
    assert!(report.contains("all seed pages work"), "{report}");
    srv.stop().await;
}
