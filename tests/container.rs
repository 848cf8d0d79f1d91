//! deploy/docker/Dockerfile, built and run for real: Debian's buildah builds
//! it (`--format docker`, which keeps HEALTHCHECK; `--pull=never` against the
//! local stand-ins for its base images that tests/container/stand-in-images.sh
//! makes, since no registry is reachable), podman runs it with runc on the
//! host network, `podman healthcheck run` asks the image's own HEALTHCHECK,
//! a tokio-tungstenite client has the seed's chat exchange with it, and
//! `podman stop` (the image's STOPSIGNAL, SIGTERM) must end in Close 1001 for
//! every client and exit code 0, with the process running as a non-root user.
//!
//! The test owns its loopback port for the whole run: it binds 127.0.0.1:0
//! and hands the listening socket to the container (socket activation:
//! `--preserve-fds 1`, `LISTEN_FDS=1`, `LISTEN_PID=1`), so no released port
//! is ever re-used; `ROOMCAST_LISTEN` names the same address for the
//! HEALTHCHECK's `roomcast health`.
//!
//! podman and buildah read tests/container/containers.conf (runc; ulimits
//! within this host's hard limits). Without podman the test is skipped with
//! a message, unless `REQUIRE_CONTAINER_TEST=1` (tests/run.sh sets it,
//! after installing podman, buildah, runc and debootstrap).

mod common;

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{json, Ws};
use tokio::io::AsyncBufReadExt;
use tokio::process::Command;

const BASE_IMAGES: [&str; 2] = [
    "docker.io/library/rust:1.95-slim-bookworm",
    "gcr.io/distroless/cc-debian12:nonroot",
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `podman` or `buildah` with the test's containers.conf.
fn tool(name: &str) -> Command {
    let mut cmd = Command::new(name);
    cmd.env(
        "CONTAINERS_CONF",
        repo().join("tests/container/containers.conf"),
    )
    .current_dir(repo())
    .kill_on_drop(true);
    cmd
}

/// Run it; its stdout if it succeeds, else (status, stdout and stderr).
async fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{cmd:?}: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

async fn must(cmd: &mut Command) -> String {
    output(cmd).await.unwrap_or_else(|e| panic!("{e}"))
}

/// None if the container test can run here; else why not.
async fn unavailable() -> Option<String> {
    if let Err(e) = output(tool("podman").arg("info")).await {
        return Some(format!("podman cannot run here: {e}"));
    }
    for image in BASE_IMAGES {
        if output(tool("podman").args(["image", "exists", image]))
            .await
            .is_err()
        {
            return Some(format!(
                "base image {image} is missing: tests/container/stand-in-images.sh makes a local stand-in"
            ));
        }
    }
    None
}

/// The container and image, removed however the test ends.
struct Cleanup {
    container: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let conf = repo().join("tests/container/containers.conf");
        let _ = std::process::Command::new("podman")
            .args(["rm", "--force", "--time", "0", &self.container])
            .env("CONTAINERS_CONF", &conf)
            .output();
        let _ = std::process::Command::new("podman")
            .args(["rmi", "--force", &self.image])
            .env("CONTAINERS_CONF", &conf)
            .output();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_image_builds_runs_answers_its_healthcheck_and_stops_cleanly() {
    if let Some(why) = unavailable().await {
        assert_ne!(
            std::env::var("REQUIRE_CONTAINER_TEST").as_deref(),
            Ok("1"),
            "{why}"
        );
        eprintln!("SKIPPED the container test: {why} (tests/run.sh installs podman and makes the base images)");
        return;
    }
    let id = std::process::id();
    let cleanup = Cleanup {
        container: format!("roomcast-test-{id}"),
        image: format!("localhost/roomcast-test:{id}"),
    };
    let (name, image) = (cleanup.container.as_str(), cleanup.image.as_str());

    // Build: the whole Dockerfile, compile stage included (cargo fetches
    // crates through the host network; its registry and target directory are
    // the Dockerfile's cache mounts, so a second build on one machine is quick).
    must(tool("buildah").args([
        "bud",
        "--format",
        "docker",
        "--pull=never",
        "--network",
        "host",
        "--ignorefile",
        "deploy/docker/Dockerfile.dockerignore",
        "-f",
        "deploy/docker/Dockerfile",
        "-t",
        image,
        ".",
    ]))
    .await;
    let inspect: serde_json::Value =
        serde_json::from_str(&must(tool("podman").args(["image", "inspect", image])).await)
            .unwrap();
    let config = &inspect[0]["Config"];
    assert_eq!(config["User"], "65532:65532", "{config}");
    assert_eq!(config["StopSignal"], "SIGTERM", "{config}");
    assert_eq!(
        inspect[0]["Healthcheck"]["Test"],
        serde_json::json!(["CMD", "/usr/local/bin/roomcast", "health"]),
        "the docker format keeps HEALTHCHECK: {}",
        inspect[0]
    );

    // Run, on a listening socket this test holds.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let listen = format!("ROOMCAST_LISTEN={addr}");
    // The socket is the shell's stdin; it becomes the container's fd 3.
    let mut run = tool("sh");
    run.args(["-c", "exec podman run \"$@\" 3<&0 </dev/null", "sh"])
        .args(["--detach", "--name", name, "--network", "host"])
        .args([
            "--preserve-fds",
            "1",
            "-e",
            "LISTEN_FDS=1",
            "-e",
            "LISTEN_PID=1",
        ])
        .args(["-e", &listen, image])
        .stdin(Stdio::from(OwnedFd::from(listener)));
    let out = run.output().await.unwrap();
    assert!(out.status.success(), "podman run: {out:?}");

    // Its log: the startup line says the socket was inherited.
    let mut logs = tool("sh")
        .args(["-c", "exec podman logs --follow \"$1\" 2>&1", "sh", name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(logs.stdout.take().unwrap()).lines();
    let startup = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("listening on http://") {
                return line;
            }
        }
        panic!("the container exited before listening");
    })
    .await
    .expect("the startup line within 30 s");
    assert!(
        startup.contains(&format!("http://{addr} ")) && startup.contains("inherited"),
        "{startup}"
    );
    let (log_tx, mut log_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = log_tx.send(line);
        }
    });

    // The image's HEALTHCHECK, as podman runs it (the server is up: the first
    // run should pass; a few more cover a slow exec).
    let mut health = Err(String::new());
    for _ in 0..10 {
        health = output(tool("podman").args(["healthcheck", "run", name])).await;
        if health.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    health.unwrap_or_else(|e| panic!("never healthy: {e}"));
    let status =
        must(tool("podman").args(["inspect", "--format", "{{.State.Health.Status}}", name])).await;
    assert_eq!(status.trim(), "healthy");

    // Not root: the container's process, as the host's kernel sees it.
    let pid = must(tool("podman").args(["inspect", "--format", "{{.State.Pid}}", name])).await;
    let proc_status = std::fs::read_to_string(format!("/proc/{}/status", pid.trim())).unwrap();
    for field in ["Uid:", "Gid:"] {
        let ids: Vec<&str> = proc_status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(ids, ["65532"; 4], "{field} of pid {}", pid.trim());
    }

    // The seed's chat page, twice: enter, message to both, leave.
    let url = format!("ws://{addr}/chat");
    let mut a = Ws::connect(&url).await;
    assert_eq!(a.recv_json().await, json("enter", "user1 comes in"));
    let mut b = Ws::connect(&url).await;
    assert_eq!(b.recv_json().await, json("enter", "user2 comes in"));
    assert_eq!(a.recv_json().await, json("enter", "user2 comes in"));
    a.send_text("hello from the host").await;
    let said = json("message", "user1:hello from the host");
    assert_eq!(a.recv_json().await, said);
    assert_eq!(b.recv_json().await, said);
    b.close().await;
    assert_eq!(a.recv_json().await, json("leave", "user2 left"));
    let mut c = Ws::connect(&url).await;
    assert_eq!(c.recv_json().await, json("enter", "user3 comes in"));
    assert_eq!(a.recv_json().await, json("enter", "user3 comes in"));

    // podman stop: SIGTERM, then (after 30 s, which must not come) SIGKILL.
    let stop = tokio::spawn({
        let mut cmd = tool("podman");
        cmd.args(["stop", "--time", "30", name]);
        async move { output(&mut cmd).await }
    });
    for ws in [&mut a, &mut c] {
        let (code, reason) = ws.expect_close().await;
        assert_eq!(code, 1001, "{reason}");
    }
    stop.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
    let exit =
        must(tool("podman").args(["inspect", "--format", "{{.State.ExitCode}}", name])).await;
    assert_eq!(exit.trim(), "0", "exit code after SIGTERM");
    let mut log = Vec::new();
    while let Some(line) = log_rx.recv().await {
        log.push(line);
    }
    assert!(
        log.iter().any(|l| l.contains("stopped")),
        "the server logs its stop: {log:#?}"
    );
    let _ = logs.wait().await;
    drop(cleanup);
}
