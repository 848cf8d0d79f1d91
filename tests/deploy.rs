//! `deploy/`, checked by the real tools: `kubectl kustomize` and the offline
//! Kubernetes schemas (tests/deploy/check_manifests.py), `promtool`,
//! `systemd-analyze`, Debian's `prometheus` scraping a running server, the
//! Dockerfile's build context compiled and its HEALTHCHECK run (there is no
//! Docker daemon here), and the dashboard and alerts checked against a live
//! scrape.
//!
//! Needs kubectl (on the machine image), prometheus/promtool and systemd
//! (Debian packages) and tests/deploy/.venv: tests/run.sh installs the rest.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::TestServer;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_roomcast")
}

/// Run a command; panic with its output unless it succeeds. Returns stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (tests/run.sh installs the tools)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every `roomcast_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("roomcast_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// Series names a scrape exposes (histograms with their _bucket/_sum/_count).
fn exported(scrape: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in scrape.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
        names.insert(name.to_string());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

/// kubectl kustomize + kubernetes-validate + consistency checks, and the
/// compose file against the files it mounts.
#[test]
fn kubernetes_and_compose_manifests_check_out() {
    let python = repo().join("tests/deploy/.venv/bin/python");
    assert!(
        python.exists(),
        "tests/deploy/.venv missing: run tests/run.sh"
    );
    let out = run(Command::new(python)
        .arg(repo().join("tests/deploy/check_manifests.py"))
        .arg(repo())
        .arg(bin()));
    assert!(out.trim_end().ends_with("manifests ok"), "{out}");
}

/// The ConfigMap's scripts are the repository's scripts, byte for byte
/// (kustomize cannot read files outside its directory, so they are copies).
#[test]
fn configmap_scripts_are_the_repository_scripts() {
    let list = |dir: &Path| -> BTreeSet<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".rhai"))
            .collect()
    };
    let originals = repo().join("scripts");
    let copies = repo().join("deploy/kubernetes/base/scripts");
    assert_eq!(list(&originals), list(&copies));
    let kustomization =
        std::fs::read_to_string(repo().join("deploy/kubernetes/base/kustomization.yaml")).unwrap();
    for name in list(&originals) {
        assert_eq!(
            std::fs::read(originals.join(&name)).unwrap(),
            std::fs::read(copies.join(&name)).unwrap(),
            "deploy/kubernetes/base/scripts/{name} differs from scripts/{name}: cp scripts/*.rhai deploy/kubernetes/base/scripts/"
        );
        assert!(
            kustomization.contains(&format!("- scripts/{name}")),
            "{name} is not in the ConfigMap generator"
        );
    }
}

/// promtool: the scrape config and the rules are valid, and the rules' unit
/// tests (each alert firing when it should, silent when it should not) pass.
#[test]
fn promtool_checks_config_rules_and_rule_tests() {
    let dir = repo().join("deploy/prometheus");
    run(Command::new("promtool")
        .args(["check", "config", "prometheus.yml"])
        .current_dir(&dir));
    let rules = run(Command::new("promtool")
        .args(["check", "rules", "alerts.yml"])
        .current_dir(&dir));
    assert!(rules.contains("SUCCESS: 8 rules found"), "{rules}");
    run(Command::new("promtool")
        .args(["test", "rules", "alerts.test.yml"])
        .current_dir(&dir));
}

/// The systemd units (the service and its optional socket) load cleanly and
/// the service's hardening scores as "OK" (exposure at most 2.0 of 10) in
/// `systemd-analyze security`.
#[test]
fn systemd_unit_verifies_and_is_hardened() {
    let unit = std::fs::read_to_string(repo().join("deploy/systemd/roomcast.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/roomcast "));
    // verify checks that ExecStart's binary exists: point it at this build.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roomcast.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/roomcast", bin())).unwrap();
    // The optional socket unit, verified with the service it activates.
    let socket = std::fs::read_to_string(repo().join("deploy/systemd/roomcast.socket")).unwrap();
    let listen = run(Command::new(bin()).arg("config").env(
        "ROOMCAST_CONFIG",
        repo().join("deploy/systemd/roomcast.toml"),
    ));
    let listen: serde_json::Value = serde_json::from_str(&listen).unwrap();
    assert!(
        socket.contains(&format!(
            "\nListenStream={}\n",
            listen["listen"].as_str().unwrap()
        )),
        "roomcast.socket listens where roomcast.toml's `listen` says"
    );
    std::fs::write(dir.path().join("roomcast.socket"), socket).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("roomcast.socket"))
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "verify: {stderr}"
    );

    let security = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&path));
    let score: f64 = security
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for roomcast.service: ")
                .nth(1)
        })
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score in:\n{security}"));
    assert!(score <= 2.0, "exposure {score}");
}

/// The dashboard and the alerts name only metrics a running roomcast exports,
/// and the dashboard shows every one of them.
#[tokio::test]
async fn dashboard_and_alerts_name_only_exported_metrics() {
    let srv = TestServer::start_default().await;
    let mut ws = srv.connect("/chat").await;
    ws.recv_json().await;
    let scrape = srv.get("/metrics").await.body;
    let exported = exported(&scrape);
    assert!(exported.contains("roomcast_connections"), "{scrape}");

    let dashboard_text =
        std::fs::read_to_string(repo().join("deploy/grafana/roomcast.json")).unwrap();
    let dashboard: serde_json::Value =
        serde_json::from_str(&dashboard_text).expect("dashboard JSON parses");
    let mut exprs = String::new();
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "duplicate panel id"
        );
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{} has no queries", panel["title"]);
        for t in targets {
            exprs.push_str(t["expr"].as_str().expect("expr"));
            exprs.push('\n');
        }
    }
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = var["definition"].as_str() {
            exprs.push_str(q);
        }
    }
    let in_dashboard = metric_names(&exprs);
    let unknown: Vec<_> = in_dashboard.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard names metrics roomcast does not export: {unknown:?}"
    );
    // Every metric family is on the dashboard (histograms through _bucket/_sum/_count).
    let families: BTreeSet<String> = scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    let missing: Vec<_> = families
        .iter()
        .filter(|f| !in_dashboard.iter().any(|d| d.starts_with(f.as_str())))
        .collect();
    assert!(missing.is_empty(), "not on the dashboard: {missing:?}");

    for file in ["alerts.yml", "alerts.test.yml"] {
        let text = std::fs::read_to_string(repo().join("deploy/prometheus").join(file)).unwrap();
        let named = metric_names(&text);
        assert!(!named.is_empty());
        let unknown: Vec<_> = named.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{file} names metrics roomcast does not export: {unknown:?}"
        );
    }
    srv.stop().await;
}

/// GET over HTTP/1.0 (no chunking): status and body.
async fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    (status, body.to_string())
}

/// One instant query: the values of its result vector.
async fn query(prom: &str, q: &str) -> Vec<f64> {
    let path = format!(
        "/api/v1/query?{}",
        form_urlencoded::Serializer::new(String::new())
            .append_pair("query", q)
            .finish()
    );
    let (status, body) = get(prom, &path).await;
    assert_eq!(status, 200, "{q}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["value"][1].as_str().unwrap().parse().unwrap())
        .collect()
}

/// Debian's Prometheus, running the shipped scrape config (pointed at a test
/// server) and alert rules, sees the traffic the test made.
#[tokio::test]
async fn prometheus_scrapes_roomcast_with_the_shipped_config() {
    // The traffic first, so that every scrape sees the same numbers.
    let srv = TestServer::start_default().await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(srv.connect("/chat").await);
        for ws in &mut clients {
            ws.recv_json().await; // the newcomer's enter line, to everyone
        }
    }
    for i in 0..5 {
        clients[0].send_text(&format!("message {i}")).await;
        for ws in &mut clients {
            ws.recv_json().await;
        }
    }
    // 1+2+3 enter lines and 5 messages to 3 members.
    assert_eq!(srv.metric("roomcast_messages_sent_total").await, 21.0);

    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string(repo().join("deploy/prometheus/prometheus.yml")).unwrap();
    let mut config = shipped.clone();
    for (from, to) in [
        (
            "[\"roomcast-a:3000\", \"roomcast-b:3000\"]",
            format!("[\"{}\"]", srv.addr),
        ),
        ("scrape_interval: 15s", "scrape_interval: 1s".to_string()),
        (
            "evaluation_interval: 15s",
            "evaluation_interval: 1s".to_string(),
        ),
    ] {
        assert_eq!(shipped.matches(from).count(), 1, "{from} in prometheus.yml");
        config = config.replace(from, &to);
    }
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    std::fs::copy(
        repo().join("deploy/prometheus/alerts.yml"),
        dir.path().join("alerts.yml"),
    )
    .unwrap();

    // Prometheus cannot listen on port 0 and report the port, so it gets a
    // free one; should another test take it before Prometheus binds it,
    // Prometheus exits at once and we try another.
    let (prom, child, mut lines) = 'start: {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let prom = format!("127.0.0.1:{port}");
            let mut child = tokio::process::Command::new("prometheus")
                .arg(format!(
                    "--config.file={}",
                    dir.path().join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={prom}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("prometheus (Debian package prometheus; tests/run.sh installs it)");
            let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
            let ready = tokio::time::timeout(Duration::from_secs(60), async {
                let mut log = String::new();
                while let Some(line) = lines.next_line().await.unwrap() {
                    if line.contains("Server is ready to receive web requests") {
                        return Ok(());
                    }
                    log.push_str(&line);
                    log.push('\n');
                }
                Err(log)
            })
            .await
            .expect("prometheus ready in time");
            match ready {
                Ok(()) => break 'start (prom, child, lines),
                Err(log) if log.contains("address already in use") => continue,
                Err(log) => panic!("prometheus exited before it was ready:\n{log}"),
            }
        }
        panic!("no free port for prometheus after 5 tries");
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    // Wait for the first scrape and the first rule evaluation.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let rules = loop {
        let up = query(&prom, "up{job=\"roomcast\"}").await;
        let (_, rules) = get(&prom, "/api/v1/rules").await;
        let rules: serde_json::Value = serde_json::from_str(&rules).unwrap();
        let evaluated = rules["data"]["groups"][0]["rules"]
            .as_array()
            .is_some_and(|r| {
                r.iter().all(|r| {
                    r["lastEvaluation"]
                        .as_str()
                        .is_some_and(|t| !t.starts_with("0001"))
                })
            });
        if up == [1.0] && evaluated {
            break rules;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no scrape: up = {up:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    assert_eq!(query(&prom, "roomcast_connections").await, [3.0]);
    assert_eq!(
        query(&prom, "roomcast_connections_opened_total").await,
        [3.0]
    );
    assert_eq!(
        query(&prom, "roomcast_messages_received_total").await,
        [5.0]
    );
    assert_eq!(query(&prom, "roomcast_messages_sent_total").await, [21.0]);
    assert_eq!(query(&prom, "roomcast_rooms").await, [1.0]);
    assert_eq!(
        query(&prom, "roomcast_script_calls_total{hook=\"message\"}").await,
        [5.0]
    );

    // Every shipped rule loaded and evaluates cleanly; none fires on a healthy server.
    let loaded = rules["data"]["groups"][0]["rules"].as_array().unwrap();
    assert_eq!(loaded.len(), 8);
    for rule in loaded {
        assert_eq!(rule["health"], "ok", "{rule}");
        assert_eq!(rule["state"], "inactive", "{rule}");
    }
    drop(child);
    srv.stop().await;
}

/// Every shipped config starts a server (listen and scripts overridden for
/// the test, as a container's would be by its mounts), and the image's
/// HEALTHCHECK command, `roomcast health`, passes against it and fails
/// against nothing.
#[tokio::test]
async fn shipped_configs_start_and_pass_the_healthcheck() {
    let cwd = tempfile::tempdir().unwrap();
    let scripts = repo().join("scripts");
    for config in [
        "deploy/docker/roomcast.toml",
        "deploy/kubernetes/base/roomcast.toml",
        "deploy/kubernetes/overlays/example/roomcast.toml",
        "deploy/systemd/roomcast.toml",
    ] {
        let path = repo().join(config);
        let (child, addr, _) = common::spawn_binary(
            &["--scripts", scripts.to_str().unwrap()],
            &[("ROOMCAST_CONFIG", path.to_str().unwrap())],
            cwd.path(),
        )
        .await;
        let health = tokio::process::Command::new(bin())
            .args(["health", &addr])
            .env("ROOMCAST_CONFIG", &path)
            .output()
            .await
            .unwrap();
        assert!(health.status.success(), "{config}: {health:?}");
        drop(child);
    }
    // Nothing listening (a port held bound, not listening, so no other
    // test can take it meanwhile): unhealthy, exit 1.
    let closed = common::DeadPort::new();
    let health = Command::new(bin())
        .args(["health", &closed.addr.to_string()])
        .output()
        .unwrap();
    assert_eq!(health.status.code(), Some(1), "{health:?}");
}

/// A Dockerfile instruction: keyword and arguments (continuations joined).
fn instructions(dockerfile: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let t = line.trim();
        if current.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            current.push_str(body);
            current.push(' ');
            continue;
        }
        current.push_str(t);
        let (k, v) = current.split_once(' ').unwrap_or((&current, ""));
        out.push((k.to_uppercase(), v.trim().to_string()));
        current.clear();
    }
    out
}

/// Multi-stage, a non-root numeric user, the scripts and an example config in
/// the image, a HEALTHCHECK that runs `roomcast health`, and a build context
/// (Dockerfile.dockerignore) that sends what the COPYs need.
#[test]
fn dockerfile_is_multi_stage_non_root_with_a_healthcheck() {
    let docker = repo().join("deploy/docker");
    let text = std::fs::read_to_string(docker.join("Dockerfile")).unwrap();
    let all = instructions(&text);
    let froms: Vec<_> = all.iter().filter(|(k, _)| k == "FROM").collect();
    assert!(froms.len() >= 2, "multi-stage");
    assert!(froms[0].1.ends_with(" AS build"), "{:?}", froms[0]);
    let runtime = &froms.last().unwrap().1;
    assert!(
        !runtime.starts_with("rust"),
        "the runtime image is not the toolchain: {runtime}"
    );
    let last_stage = all.iter().rposition(|(k, _)| k == "FROM").unwrap();
    let final_stage = &all[last_stage..];
    let get = |key: &str| -> Vec<&str> {
        final_stage
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };

    let user = get("USER");
    let uid = user.last().expect("USER").split(':').next().unwrap();
    assert!(
        uid.parse::<u32>().is_ok_and(|u| u != 0),
        "numeric non-root user: {uid}"
    );
    let health = get("HEALTHCHECK");
    assert!(
        health.len() == 1 && health[0].contains("CMD [\"/usr/local/bin/roomcast\", \"health\"]"),
        "{health:?}"
    );
    assert_eq!(get("ENTRYPOINT"), ["[\"/usr/local/bin/roomcast\"]"]);

    // What the final stage copies from the context, and where.
    let copies: Vec<(&str, &str)> = get("COPY")
        .into_iter()
        .filter(|v| !v.starts_with("--from"))
        .map(|v| v.split_once(' ').unwrap())
        .collect();
    let from_build = get("COPY");
    assert!(
        from_build.contains(&"--from=build /usr/local/bin/roomcast /usr/local/bin/roomcast"),
        "{from_build:?}"
    );
    let env = get("ENV");
    let config = env
        .iter()
        .find_map(|v| v.strip_prefix("ROOMCAST_CONFIG="))
        .expect("ENV ROOMCAST_CONFIG");
    let (config_src, _) = copies
        .iter()
        .find(|(_, dst)| *dst == config)
        .expect("the config is copied into the image");
    // The config as roomcast itself reads it.
    let effective = run(Command::new(bin())
        .arg("config")
        .env("ROOMCAST_CONFIG", repo().join(config_src)));
    let image_config: serde_json::Value = serde_json::from_str(&effective).unwrap();
    let scripts_dir = image_config["scripts"]["dir"].as_str().unwrap();
    assert!(
        copies
            .iter()
            .any(|(src, dst)| *src == "scripts/*.rhai" && dst.trim_end_matches('/') == scripts_dir),
        "the default scripts are copied to scripts.dir ({scripts_dir}): {copies:?}"
    );
    let port = image_config["listen"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap();
    assert_eq!(get("EXPOSE"), [port]);

    // Every COPY source (both stages) exists and is let through by the ignore file.
    let ignore = std::fs::read_to_string(docker.join("Dockerfile.dockerignore")).unwrap();
    let allowed: Vec<&str> = ignore
        .lines()
        .filter_map(|l| l.strip_prefix('!'))
        .map(|l| l.trim_end_matches('/'))
        .collect();
    for (_, v) in all.iter().filter(|(k, _)| k == "COPY") {
        if v.starts_with("--from") {
            continue;
        }
        let parts: Vec<&str> = v.split_whitespace().collect();
        for src in &parts[..parts.len() - 1] {
            let path = src.trim_end_matches("/*.rhai");
            assert!(repo().join(path).exists(), "COPY {src}: no such path");
            assert!(
                allowed
                    .iter()
                    .any(|a| path == *a || path.starts_with(&format!("{a}/"))),
                "COPY {src} is excluded by Dockerfile.dockerignore"
            );
        }
    }
}

/// The build stage compiles from exactly the files it copies (a missing
/// `include_str!` source or bench target would fail `docker build`).
#[test]
fn docker_build_stage_compiles_from_the_files_it_copies() {
    let text = std::fs::read_to_string(repo().join("deploy/docker/Dockerfile")).unwrap();
    let all = instructions(&text);
    let second = all.iter().skip(1).position(|(k, _)| k == "FROM").unwrap() + 1;
    let ctx = tempfile::tempdir().unwrap();
    let mut copied = 0;
    for (_, v) in all[..second].iter().filter(|(k, _)| k == "COPY") {
        let parts: Vec<&str> = v.split_whitespace().collect();
        for src in &parts[..parts.len() - 1] {
            copy_tree(&repo().join(src), &ctx.path().join(src));
            copied += 1;
        }
    }
    assert!(copied >= 3, "{all:?}");
    // A separate target directory: the outer `cargo test` holds the lock on ours.
    let out = Command::new(env!("CARGO"))
        .args(["check", "--locked", "--offline", "--bin", "roomcast"])
        .env("CARGO_TARGET_DIR", repo().join("target/docker-context"))
        .current_dir(ctx.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_dir() {
        if from.file_name().is_some_and(|n| n == "node_modules") {
            return;
        }
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
}
