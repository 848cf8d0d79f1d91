//! The TypeScript SDK (`clients/js`), built, in Node against the real
//! server: a network drop mid-chat (a proxy cut), a server restarted, a
//! client moved to another node of a cluster, a Redis that came back empty,
//! and a token refreshed before it expires — each scenario of
//! `clients/js/test/integration.mjs`. Also: the committed `dist/` is what
//! the sources build to.
//!
//! Needs Node, `npm ci --prefix clients/js` and `redis-server`: tests/run.sh
//! does both.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::proxy::Proxy;
use common::redis::TestRedis;
use common::TestServer;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/js")
}

/// One run of integration.mjs: its questions, answered by the test.
struct Scenario {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    report: String,
}

impl Scenario {
    fn spawn(name: &'static str, url: &str, url2: &str) -> Scenario {
        let dir = sdk_dir();
        assert!(
            dir.join("node_modules/ws").is_dir() && dir.join("dist/index.js").is_file(),
            "the SDK's dev dependencies are missing: run tests/run.sh (npm ci --prefix clients/js)"
        );
        let mut child = tokio::process::Command::new("node")
            .arg(dir.join("test/integration.mjs"))
            .args([name, url, url2])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Scenario {
            name,
            child,
            stdin,
            lines,
            report: String::new(),
        }
    }

    /// The next thing the scenario asks for (`None`: it finished).
    async fn ask(&mut self) -> Option<String> {
        let wait = Duration::from_secs(60);
        loop {
            let line = tokio::time::timeout(wait, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("the scenario is stuck:\n{}", self.report))
                .unwrap()?;
            self.report.push_str(&line);
            self.report.push('\n');
            if let Some(what) = line.strip_prefix("ask ") {
                return Some(what.to_string());
            }
        }
    }

    /// Answer the question just asked.
    async fn answer(&mut self, answer: &str) {
        self.stdin
            .write_all(format!("{answer}\n").as_bytes())
            .await
            .unwrap();
    }

    async fn expect(&mut self, what: &str) {
        let asked = self.ask().await;
        assert_eq!(asked.as_deref(), Some(what), "{}", self.report);
    }

    /// Wait for the end: it must exit 0 having said it works.
    async fn finish(mut self) {
        assert_eq!(self.ask().await, None, "{}", self.report);
        let status = self.child.wait().await.unwrap();
        let mut err = String::new();
        let mut stderr = self.child.stderr.take().unwrap();
        stderr.read_to_string(&mut err).await.unwrap();
        assert!(status.success(), "{}{err}", self.report);
        assert!(
            self.report.contains(&format!("sdk {} works", self.name)),
            "{}{err}",
            self.report
        );
    }
}

fn ws_url(addr: std::net::SocketAddr) -> String {
    format!("ws://{addr}/chat")
}

/// The network drops under one client mid-chat (its connections are cut
/// and refused for a while): its publishes wait (the third over the bound
/// is refused), it resumes with every message once, in order, then sends
/// what waited.
#[tokio::test]
async fn a_network_drop_resumes_every_message_once() {
    let srv = TestServer::start(common::test_config()).await;
    let proxy = Proxy::new(srv.addr).await;
    let mut s = Scenario::spawn("drop", &ws_url(proxy.addr), &ws_url(srv.addr));
    s.expect("cut").await;
    proxy.point_to(None);
    s.answer("ok").await;
    s.expect("heal").await;
    proxy.point_to(Some(srv.addr));
    s.answer("ok").await;
    s.finish().await;
    srv.stop().await;
}

/// The server is restarted (in memory: the room's history is gone): the
/// clients come back, `resume_failed` is surfaced once with its reason, the
/// history is fetched, and the chat goes on.
#[tokio::test]
async fn a_restarted_server_surfaces_resume_failed_and_the_chat_goes_on() {
    let first = TestServer::start(common::test_config()).await;
    let proxy = Proxy::new(first.addr).await;
    let url = ws_url(proxy.addr);
    let mut s = Scenario::spawn("restart", &url, &url);
    s.expect("restart").await;
    proxy.point_to(None);
    first.stop().await;
    let second = TestServer::start(common::test_config()).await;
    proxy.point_to(Some(second.addr));
    s.answer("ok").await;
    s.finish().await;
    second.stop().await;
}

async fn node(redis: &TestRedis) -> TestServer {
    let mut c = common::test_config();
    c.cluster.redis_url = redis.url();
    TestServer::start(c).await
}

/// Two nodes and a real redis-server: a client moved to the other node
/// resumes there; Redis killed and started empty while it is subscribed:
/// the reset event comes, then the new life's messages, none dropped or
/// doubled.
#[tokio::test]
async fn across_nodes_a_move_resumes_and_a_reset_is_told() {
    let mut redis = TestRedis::start().await;
    let (a, b) = (node(&redis).await, node(&redis).await);
    let proxy = Proxy::new(a.addr).await;
    let mut s = Scenario::spawn("cluster", &ws_url(proxy.addr), &ws_url(b.addr));
    s.expect("move").await;
    proxy.point_to(Some(b.addr));
    s.answer("ok").await;
    s.expect("empty-redis").await;
    redis.kill().await;
    for n in [&a, &b] {
        assert_eq!(n.wait_metric("roomcast_broker_up", 0.0).await, 0.0);
    }
    redis.restart().await;
    for n in [&a, &b] {
        assert_eq!(n.wait_metric("roomcast_broker_up", 1.0).await, 1.0);
    }
    s.answer("ok").await;
    s.finish().await;
    assert_eq!(b.metric("roomcast_room_resets_total").await, 1.0);
    a.stop().await;
    b.stop().await;
}

/// A token that expires in 3 s: `getToken` gives a fresh one before then,
/// the SDK refreshes the live connection, which outlives a control
/// connection opened with the first token.
#[tokio::test]
async fn a_token_is_refreshed_before_it_expires() {
    const SECRET: &str = "sdk-test-secret";
    let mut c = common::test_config();
    c.auth.required = true;
    c.auth.hs256_secret = Some(SECRET.into());
    let srv = TestServer::start(c).await;
    let url = ws_url(srv.addr);
    let mut s = Scenario::spawn("token", &url, &url);
    s.expect("secret").await;
    s.answer(SECRET).await;
    s.finish().await;
    assert_eq!(
        srv.metric("roomcast_token_refreshes_total{result=\"ok\"}")
            .await,
        1.0
    );
    assert_eq!(srv.metric("roomcast_token_expirations_total").await, 1.0);
    srv.stop().await;
}

/// `clients/js/dist` is committed (so the server needs no Node to build):
/// it must be exactly what `tsc` makes of `clients/js/src` now.
#[test]
fn the_committed_build_is_what_the_sources_build_to() {
    let dir = sdk_dir();
    let tsc = dir.join("node_modules/.bin/tsc");
    assert!(
        tsc.is_file(),
        "TypeScript is missing: run tests/run.sh (npm ci --prefix clients/js)"
    );
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(&tsc)
        .args(["-p", "tsconfig.json", "--outDir"])
        .arg(out.path())
        .current_dir(&dir)
        .status()
        .expect("tsc runs");
    assert!(status.success(), "tsc failed");
    let listing = |d: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let committed = dir.join("dist");
    assert_eq!(
        listing(out.path()),
        listing(&committed),
        "the files of dist/"
    );
    for name in listing(&committed) {
        let fresh = std::fs::read_to_string(out.path().join(&name)).unwrap();
        let kept = std::fs::read_to_string(committed.join(&name)).unwrap();
        assert!(
            fresh == kept,
            "clients/js/dist/{name} differs from a fresh build: run `npm run build --prefix clients/js` and commit dist/"
        );
    }
}
