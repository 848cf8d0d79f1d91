//! socket.io clients for tests: scenarios of tests/browser/socketio_clients.mjs
//! (the real socket.io-client 2.0.3 and 4.x, run by Node).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::{json, TestServer, Ws, V1};

/// Start tests/browser/socketio_clients.mjs `scenario` against `addr`, with
/// extra environment; stdin, stdout and stderr piped.
pub fn spawn(addr: SocketAddr, scenario: &str, envs: &[(&str, &str)]) -> tokio::process::Child {
    spawn_script("socketio_clients.mjs", addr, scenario, envs)
}

/// Start `script` (in tests/browser) `scenario` against `addr`, as [`spawn`].
pub fn spawn_script(
    script: &str,
    addr: SocketAddr,
    scenario: &str,
    envs: &[(&str, &str)],
) -> tokio::process::Child {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/socket.io-client-2").is_dir()
            && dir.join("node_modules/socket.io-client").is_dir(),
        "socket.io clients missing: run tests/run.sh (npm ci --prefix tests/browser)"
    );
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(dir.join(script))
        .arg(addr.to_string())
        .arg(scenario)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().expect("node runs")
}

/// Wait for a spawned scenario to exit; panics, with `report` (its stdout)
/// and its stderr, unless it exited 0.
pub async fn finish(child: &mut tokio::process::Child, report: &str) {
    let status = child.wait().await.unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .await
        .unwrap();
    assert!(status.success(), "{report}{err}");
}

/// Run a scenario of tests/browser/socketio_clients.mjs against `srv`; every
/// `ask WHAT` line it prints is answered with `answer(WHAT)`.
pub async fn clients<F, Fut>(srv: &TestServer, scenario: &str, answer: F)
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = String>,
{
    script_clients("socketio_clients.mjs", srv.addr, scenario, answer).await
}

/// Run `script` (in tests/browser) `scenario` against `addr`, answering
/// its questions as [`clients`] does.
pub async fn script_clients<F, Fut>(script: &str, addr: SocketAddr, scenario: &str, answer: F)
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let done = format!("socket.io {scenario} works");
    run_script(script, addr, scenario, &done, answer).await;
}

/// Run `script` (in tests/browser) `scenario` against `addr`, answering
/// its questions as [`clients`] does; it must print `done`. Returns what
/// it printed.
pub async fn run_script<F, Fut>(
    script: &str,
    addr: SocketAddr,
    scenario: &str,
    done: &str,
    mut answer: F,
) -> String
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let mut child = spawn_script(script, addr, scenario, &[]);
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut report = String::new();
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            report.push_str(&line);
            report.push('\n');
            if let Some(what) = line.strip_prefix("ask ") {
                let reply = answer(what.to_string()).await;
                stdin
                    .write_all(format!("{reply}\n").as_bytes())
                    .await
                    .unwrap();
            }
        }
    };
    let finished = tokio::time::timeout(Duration::from_secs(120), run).await;
    assert!(finished.is_ok(), "the clients did not finish:\n{report}");
    finish(&mut child, &report).await;
    assert!(report.contains(done), "{report}");
    report
}

pub async fn no_questions(what: String) -> String {
    panic!("unexpected question {what}")
}

/// The raw (`user1`) and roomcast.v1 (`user2`) members' side of the `mixed`
/// scenario once its socket.io client is in the room as `nick`: they see it
/// come in, then each speaks and the raw member hears both.
pub async fn raw_and_v1_speak(raw: &mut Ws, v1: &mut V1, nick: &str) {
    assert_eq!(
        raw.recv_json().await,
        json("enter", &format!("{nick} comes in"))
    );
    raw.send_text("from raw").await;
    assert_eq!(raw.recv_json().await, json("message", "user1:from raw"));
    v1.send(serde_json::json!({"type": "publish", "room": "chat/lobby", "data": "from v1"}))
        .await;
    assert_eq!(raw.recv_json().await, json("message", "user2:from v1"));
}
