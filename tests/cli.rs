//! The `roomcast` binary: config layering, bad config, `check`, startup, SIGTERM.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::{json, Ws};
use tokio::process::Child;

const BIN: &str = env!("CARGO_BIN_EXE_roomcast");

fn roomcast(args: &[&str], envs: &[(&str, &str)], cwd: &Path) -> Output {
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("ROOMCAST_CONFIG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("binary runs")
}

fn effective_config(args: &[&str], envs: &[(&str, &str)], cwd: &Path) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("config");
    let out = roomcast(&all, envs, cwd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Defaults < file < environment < flags.
#[test]
fn config_layers_defaults_file_env_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("roomcast.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:4000\"\n[limits]\nmax_message_size = 1000\noutbox_messages = 77\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();

    let c = effective_config(&[], &[], dir.path());
    assert_eq!(c["listen"], "127.0.0.1:3000");
    assert_eq!(c["limits"]["max_message_size"], 65536);

    let c = effective_config(&["--config", f], &[], dir.path());
    assert_eq!(c["listen"], "127.0.0.1:4000");
    assert_eq!(c["limits"]["max_message_size"], 1000);
    assert_eq!(c["limits"]["outbox_messages"], 77);
    assert_eq!(c["limits"]["close_timeout"], "2s", "untouched default");

    let env = [
        ("ROOMCAST_LIMITS__MAX_MESSAGE_SIZE", "2000"),
        ("ROOMCAST_CONFIG", f),
    ];
    let c = effective_config(&[], &env, dir.path());
    assert_eq!(c["limits"]["max_message_size"], 2000, "env beats file");
    assert_eq!(
        c["limits"]["outbox_messages"], 77,
        "file (via ROOMCAST_CONFIG) beats default"
    );

    let env = [("ROOMCAST_LISTEN", "127.0.0.1:5000")];
    let c = effective_config(&["--config", f], &env, dir.path());
    assert_eq!(c["listen"], "127.0.0.1:5000", "env beats file");
    let c = effective_config(
        &["--config", f, "--listen", "127.0.0.1:6000"],
        &env,
        dir.path(),
    );
    assert_eq!(c["listen"], "127.0.0.1:6000", "flag beats env");
}

/// `roomcast config` shows secrets as `***` (the API key, the HS256 secret,
/// a Redis password); `--show-secrets` prints them as they are.
#[test]
fn config_redacts_secrets_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("ROOMCAST_API__KEY", "key-0123456789abcdef"),
        ("ROOMCAST_AUTH__HS256_SECRET", "hs256-topsecret"),
        (
            "ROOMCAST_CLUSTER__REDIS_URL",
            "redis://app:redispw@127.0.0.1:6379",
        ),
    ];
    let out = roomcast(&["config"], &env, dir.path());
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for secret in ["key-0123456789abcdef", "hs256-topsecret", "redispw"] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }
    let c: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(c["api"]["key"], "***");
    assert_eq!(c["auth"]["hs256_secret"], "***");
    assert_eq!(c["cluster"]["redis_url"], "redis://app:***@127.0.0.1:6379");
    let out = roomcast(&["config", "--show-secrets"], &env, dir.path());
    assert!(out.status.success());
    let c: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["api"]["key"], "key-0123456789abcdef");
    assert_eq!(c["auth"]["hs256_secret"], "hs256-topsecret");
    assert_eq!(
        c["cluster"]["redis_url"],
        "redis://app:redispw@127.0.0.1:6379"
    );
}

/// A bad config exits with code 2 and names the offending key.
#[test]
fn bad_config_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[limits]\nmax_message_size = \"huge\"\n",
            "limits.max_message_size",
        ),
        ("[limits]\nmax_mesage_size = 1\n", "max_mesage_size"),
        ("default_route = \"nowhere\"\n", "default_route"),
        (
            "[shutdown]\ndrain_timeout = \"soon\"\n",
            "shutdown.drain_timeout",
        ),
        ("[socketio]\npath = \"socket.io\"\n", "socketio.path"),
        ("[socketio]\npath = \"/chat/\"\n", "socketio.path"),
    ];
    for (toml, key) in cases {
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, toml).unwrap();
        let out = roomcast(&["--config", file.to_str().unwrap()], &[], dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{toml}: {stderr}");
        assert!(
            stderr.contains(key),
            "{toml}: stderr does not name {key}: {stderr}"
        );
    }
    let out = roomcast(
        &[],
        &[("ROOMCAST_LIMITS__OUTBOX_MESSAGES", "lots")],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("limits.outbox_messages"));
    let out = roomcast(&["--config", "/nonexistent/roomcast.toml"], &[], dir.path());
    assert_eq!(out.status.code(), Some(2));
}

/// `roomcast check` compiles scripts and reports errors as file:line:col.
#[test]
fn check_reports_file_line_col() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.rhai");
    std::fs::write(&bad, "fn on_message(conn, text) {\n    let = 1;\n}\n").unwrap();
    let out = roomcast(&["check", bad.to_str().unwrap()], &[], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let expected = format!("{}:2:", bad.display());
    assert!(stderr.contains(&expected), "{stderr}");

    let nohook = dir.path().join("nohook.rhai");
    std::fs::write(&nohook, "fn on_connect(conn) {}\n").unwrap();
    let out = roomcast(&["check", nohook.to_str().unwrap()], &[], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("on_message"));

    let scripts = common::repo_scripts();
    let out = roomcast(
        &["--scripts", scripts.to_str().unwrap(), "check"],
        &[],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No scripts directory: the built-in copies the server would run are
    // checked (it once failed on "No such file" at `:0:0`).
    let empty = tempfile::tempdir().unwrap();
    let out = roomcast(&["check"], &[], empty.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for builtin in [
        "builtin:chat.rhai",
        "builtin:echo.rhai",
        "builtin:shout.rhai",
    ] {
        assert!(stdout.contains(builtin), "{stdout}");
    }
}

async fn spawn_server(args: &[&str], cwd: &Path) -> (Child, String, String) {
    common::spawn_binary(args, &[], cwd).await
}

/// With no scripts directory the binary runs on its built-in scripts, and
/// says so in its one startup line.
#[tokio::test]
async fn runs_anywhere_on_builtin_scripts() {
    let empty = tempfile::tempdir().unwrap();
    let (mut child, addr, line) = spawn_server(&[], empty.path()).await;
    for expected in [
        "/echo=builtin:echo.rhai",
        "/shout=builtin:shout.rhai",
        "/chat=builtin:chat.rhai",
    ] {
        assert!(line.contains(expected), "{line}");
    }
    let mut ws = Ws::connect(&format!("ws://{addr}/shout")).await;
    ws.send_text("hey").await;
    assert_eq!(ws.recv_text().await, "HEY!!!");
    child.kill().await.unwrap();
}

/// SIGTERM: every WebSocket gets Close 1001, then the process exits 0.
#[tokio::test]
async fn sigterm_closes_sessions_with_1001_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let scripts = common::repo_scripts();
    let (mut child, addr, _) =
        spawn_server(&["--scripts", scripts.to_str().unwrap()], dir.path()).await;
    let mut a = Ws::connect(&format!("ws://{addr}/chat")).await;
    assert_eq!(a.recv_json().await, json("enter", "user1 comes in"));
    let mut b = Ws::connect(&format!("ws://{addr}/echo")).await;
    b.send_text("x").await;
    b.recv_text().await;

    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());

    assert_eq!(a.expect_close().await.0, 1001);
    assert_eq!(b.expect_close().await.0, 1001);
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// The example `roomcast.toml` is valid, sets every option, and its values are
/// the defaults (so it documents what running without a file means).
#[test]
fn example_config_documents_every_option_with_its_default() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = root.join("roomcast.toml");
    let from_file = effective_config(&["--config", example.to_str().unwrap()], &[], root);
    let defaults = effective_config(&[], &[], root);
    assert_eq!(from_file, defaults);

    let text = std::fs::read_to_string(&example).unwrap();
    let mut keys = Vec::new();
    collect_keys(&defaults, &mut keys);
    for (key, unset) in keys {
        // Options without a default (null, or an empty list of tables) are
        // shown commented out.
        let documented = text.lines().any(|l| {
            let l = l.trim_start();
            let bare = l.trim_start_matches('#').trim_start();
            let l = if unset { bare } else { l };
            l.starts_with(&format!("{key} =")) || (unset && bare.starts_with(&format!("[[{key}]]")))
        });
        assert!(documented, "roomcast.toml does not set `{key}`");
    }
}

/// Leaf keys of a JSON config, with whether their value is null (no default).
fn collect_keys(v: &serde_json::Value, out: &mut Vec<(String, bool)>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let nested = v.is_object() || v.as_array().is_some_and(|a| !a.is_empty());
                if nested {
                    collect_keys(v, out);
                } else {
                    let unset = v.is_null() || v.as_array().is_some_and(|a| a.is_empty());
                    out.push((k.clone(), unset));
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_keys(v, out)),
        _ => {}
    }
}

/// `print` and `debug` in scripts go to the log (stderr), never to stdout.
#[tokio::test]
async fn script_print_goes_to_the_log_not_stdout() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let dir = common::temp_scripts();
    std::fs::write(
        dir.path().join("echo.rhai"),
        "fn on_message(conn, text) { print(`printed ${text}`); conn.reply(text); }\n",
    )
    .unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--scripts",
            dir.path().to_str().unwrap(),
        ])
        .env_remove("ROOMCAST_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut addr = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(rest) = line.split("listening on http://").nth(1) {
            addr = rest.split_whitespace().next().unwrap().to_string();
            break;
        }
    }
    let mut ws = Ws::connect(&format!("ws://{addr}/echo")).await;
    ws.send_text("xyzzy").await;
    assert_eq!(ws.recv_text().await, "xyzzy");
    let logged = tokio::time::timeout(common::WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("printed xyzzy") {
                return line;
            }
        }
        panic!("stderr ended");
    })
    .await
    .expect("the print reaches the log");
    assert!(logged.contains("roomcast::script"), "{logged}");
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let mut out = String::new();
    stdout.read_to_string(&mut out).await.unwrap();
    assert_eq!(out, "", "nothing on stdout");
    child.wait().await.unwrap();
}

/// `--log-format json` writes one JSON object per line, the startup line included;
/// `roomcast health` answers 0 for a live server and 1 for a dead address.
#[tokio::test]
async fn json_logs_and_the_health_command() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, line) = spawn_server(&["--log-format", "json"], dir.path()).await;
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert!(
        v["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("listening on http://"),
        "{v}"
    );
    assert_eq!(v["level"], "INFO");
    let ok = std::process::Command::new(BIN)
        .args(["health", &addr])
        .status()
        .unwrap();
    assert!(ok.success());
    child.kill().await.unwrap();
    child.wait().await.unwrap();
    // Not the port just released (another test may take it): one held
    // bound and not listening.
    let dead = common::DeadPort::new();
    let down = std::process::Command::new(BIN)
        .args(["health", &dead.addr.to_string()])
        .status()
        .unwrap();
    assert_eq!(down.code(), Some(1));
}

/// `--help` describes every flag and subcommand, with the environment
/// variables that set them.
#[test]
fn help_describes_every_flag_and_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = roomcast(&["--help"], &[], dir.path());
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--config <FILE>",
        "--listen <ADDR>",
        "--scripts <DIR>",
        "--log <FILTER>",
        "--log-format <LOG_FORMAT>",
        "[possible values: text, json]",
        "ROOMCAST_CONFIG",
        "ROOMCAST_LOG_FORMAT",
        "--version",
        "health",
        "check",
        "config",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
    // Each flag line is followed by a description, not left bare.
    for line in help.lines().filter(|l| l.trim_start().starts_with("--")) {
        let i = help.find(line).unwrap() + line.len();
        let next = help[i..].lines().nth(1).unwrap_or("").trim();
        assert!(!next.is_empty(), "no description for {line}");
    }
}

/// SIGHUP (`systemctl reload`) reloads changed scripts when the directory is
/// not watched, and the server goes on serving (unhandled, SIGHUP would end it).
#[cfg(unix)]
#[tokio::test]
async fn sighup_reloads_changed_scripts() {
    let dir = common::temp_scripts();
    let cwd = tempfile::tempdir().unwrap();
    let (child, addr, _, mut logs) = common::spawn_binary_logs(
        &["--scripts", dir.path().to_str().unwrap()],
        &[("ROOMCAST_SCRIPTS__WATCH", "false")],
        cwd.path(),
    )
    .await;
    let mut ws = Ws::connect(&format!("ws://{addr}/echo")).await;
    ws.send_text("one").await;
    assert_eq!(ws.recv_text().await, "one");

    std::fs::write(
        dir.path().join("echo.rhai"),
        "fn on_message(conn, text) { `v2:${text}` }\n",
    )
    .unwrap();
    // Not watched: the running version stays until asked.
    ws.send_text("two").await;
    assert_eq!(ws.recv_text().await, "two");

    let pid = child.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::timeout(common::WAIT, async {
        while let Some(line) = logs.recv().await {
            if line.contains("script reloaded") && line.contains("echo.rhai") {
                return;
            }
        }
        panic!("the server's log ended without a reload");
    })
    .await
    .expect("a reload after SIGHUP");
    ws.send_text("three").await;
    assert_eq!(ws.recv_text().await, "v2:three");
    drop(child);
}

/// The listen backlog the kernel reports for the socket (`ss`: Send-Q of a
/// listening socket), for a server bound by the binary.
fn backlog_of(addr: &str) -> u32 {
    let port = addr.rsplit(':').next().unwrap();
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .expect("ss (Debian iproute2; tests/run.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no listener on {addr}"));
    // State Recv-Q Send-Q Local Peer
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// A reconnect storm needs a long accept queue: the binary listens with
/// `listen_backlog` (4096 by default), capped at the kernel's somaxconn, not
/// the 128 of std and tokio.
#[tokio::test]
async fn the_listen_backlog_is_the_configured_one() {
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, line) = spawn_server(&[], dir.path()).await;
    let expected = 4096.min(somaxconn);
    assert_eq!(backlog_of(&addr), expected);
    assert!(line.contains(&format!("backlog: {expected}")), "{line}");
    child.kill().await.unwrap();
    let (mut child, addr, _) =
        common::spawn_binary(&[], &[("ROOMCAST_LISTEN_BACKLOG", "300")], dir.path()).await;
    assert_eq!(backlog_of(&addr), 300.min(somaxconn));
    child.kill().await.unwrap();
    let out = std::process::Command::new(BIN)
        .args(["config"])
        .env("ROOMCAST_LISTEN_BACKLOG", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("listen_backlog"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `worker_threads`: one per usable core by default (the startup line says
/// how many); with one, a single-threaded runtime that serves, and drains on
/// SIGTERM, like the pool.
#[tokio::test]
async fn worker_threads_default_to_the_usable_cores() {
    let dir = tempfile::tempdir().unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    let (mut child, _, line) = spawn_server(&[], dir.path()).await;
    assert!(line.contains(&format!("threads: {cores}")), "{line}");
    child.kill().await.unwrap();
    let (mut child, addr, line) =
        common::spawn_binary(&[], &[("ROOMCAST_WORKER_THREADS", "1")], dir.path()).await;
    assert!(line.contains("threads: 1"), "{line}");
    let mut ws = Ws::connect(&format!("ws://{addr}/shout")).await;
    ws.send_text("one thread").await;
    assert_eq!(ws.recv_text().await, "ONE THREAD!!!");
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert_eq!(ws.expect_close().await.0, 1001);
    let status = tokio::time::timeout(common::WAIT, child.wait())
        .await
        .expect("exits after draining")
        .unwrap();
    assert!(status.success(), "{status}");
}

/// Spawn the binary through `sh` so that `fd3` (given as the shell's stdin)
/// is its descriptor 3, with `LISTEN_PID` set to its own pid (the shell's,
/// which `exec` keeps), as systemd's socket activation does.
fn spawn_activated(fd3: std::process::Stdio, envs: &[(&str, &str)]) -> Child {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.args([
        "-c",
        "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" 3<&0 </dev/null",
        BIN,
    ])
    .env_remove("ROOMCAST_CONFIG")
    .stdin(fd3)
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Socket activation (systemd's roomcast.socket, `podman run --preserve-fds`):
/// the server serves on the listening socket it was given, not on `listen`,
/// says so, and warns when `listen` (which `roomcast health` asks) differs;
/// a descriptor that is not a TCP listener is refused with a clear error.
#[tokio::test]
async fn serves_on_an_inherited_socket() {
    use tokio::io::AsyncBufReadExt;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // `listen` names a port held bound by nobody else's listener: the
    // server must not try it.
    let elsewhere = common::DeadPort::new();
    let listen = elsewhere.addr.to_string();
    let mut child = spawn_activated(
        std::process::Stdio::from(std::os::fd::OwnedFd::from(listener)),
        &[("ROOMCAST_LISTEN", &listen)],
    );
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    tokio::time::timeout(common::WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains("`roomcast health` asks `listen`");
            log.push(line);
            if done {
                return;
            }
        }
        panic!("exited: {log:#?}");
    })
    .await
    .unwrap_or_else(|_| panic!("startup and warning in time: {log:#?}"));
    let startup = log.iter().find(|l| l.contains("listening on")).unwrap();
    assert!(
        startup.contains(&format!("http://{addr} ")) && startup.contains("inherited"),
        "{startup}"
    );
    assert!(log.last().unwrap().contains(&listen), "{log:#?}");
    let mut ws = Ws::connect(&format!("ws://{addr}/shout")).await;
    ws.send_text("hey").await;
    assert_eq!(ws.recv_text().await, "HEY!!!");
    let health = std::process::Command::new(BIN)
        .args(["health", &addr.to_string()])
        .status()
        .unwrap();
    assert!(health.success());
    child.kill().await.unwrap();
    child.wait().await.unwrap();

    // Descriptor 3 is a file, not a socket: exit 1 with the reason.
    let file = std::fs::File::open(BIN).unwrap();
    let child = spawn_activated(std::process::Stdio::from(file), &[]);
    let out = tokio::time::timeout(common::WAIT, child.wait_with_output())
        .await
        .expect("exits at once")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not a socket"), "{stderr}");
}
