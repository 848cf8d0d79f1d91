//! A cluster node reaches Redis as managed services require: over TLS
//! (`rediss://`, rustls) with a private CA (`cluster.redis_ca_file`), and
//! with Redis 6+ ACL credentials (`redis://user:password@…`). A node that
//! trusts the wrong CA, or that has the wrong password, does not start: it
//! exits 2 with an error naming the key to fix. The same against a Redis
//! Cluster reached over TLS only, with an ACL user (cluster mode).
//!
//! Needs `redis-server` (Debian package, built with TLS) and `openssl` (the
//! certificates are made here, for this test only): tests/run.sh installs
//! redis-server; openssl comes with the machine.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::redis::Redis;
use common::{TestServer, V1};
use serde_json::json;

/// `openssl` with `args` in `dir`; panics with its output on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`ca.pem`), a server certificate it signed for 127.0.0.1
/// (`server.pem`, `server.key`), and a CA that signed nothing (`other.pem`).
fn certificates(dir: &Path) {
    for ca in ["ca", "other"] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-subj",
                &format!("/CN=roomcast test {ca}"),
            ],
        );
    }
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-out",
            "server.pem",
            "-extfile",
            "san.ext",
        ],
    );
}

/// redis-server on TLS only, its certificate from `dir`.
async fn tls_redis(dir: &Path) -> Redis {
    let file = |name: &str| dir.join(name).to_string_lossy().into_owned();
    let args = [
        "--tls-port".to_string(),
        "{port}".to_string(),
        "--tls-cert-file".to_string(),
        file("server.pem"),
        "--tls-key-file".to_string(),
        file("server.key"),
        "--tls-ca-cert-file".to_string(),
        file("ca.pem"),
        "--tls-auth-clients".to_string(),
        "no".to_string(),
    ];
    Redis::start_with(&args).await
}

/// Publish in a room through `srv` and get the stored offset back: the
/// node reached Redis (an unreachable store answers `not_stored`). The
/// chat script's enter line is the room's first message, so: 2.
async fn stored(srv: &TestServer) -> u64 {
    let mut v1 = V1::connect(srv, "/chat", &[]).await;
    v1.join("chat/tls").await;
    v1.send(json!({"type": "publish", "room": "chat/tls", "data": "hello", "id": 1}))
        .await;
    loop {
        let ev = v1.recv().await;
        match ev["type"].as_str() {
            Some("ack") => return ev["offset"].as_u64().unwrap(),
            Some("error") => panic!("publish refused: {ev}"),
            _ => {}
        }
    }
}

/// The binary with `envs`: it must exit 2, its stderr naming `key`.
async fn refused(envs: &[(&str, &str)], key: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_roomcast"));
    cmd.args(["--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .env_remove("ROOMCAST_CONFIG")
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .expect("the node gives up in time")
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("`{key}`")), "{err}");
}

#[tokio::test]
async fn a_node_reaches_redis_over_tls_with_its_ca_and_not_without_it() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let redis = tls_redis(dir.path()).await;
    let url = format!("rediss://{}", redis.addr);

    let mut config = common::test_config();
    config.cluster.redis_url = url.clone();
    config.cluster.redis_ca_file = Some(dir.path().join("ca.pem"));
    let srv = TestServer::start(config).await;
    assert_eq!(srv.wait_metric("roomcast_broker_up", 1.0).await, 1.0);
    assert_eq!(stored(&srv).await, 2);
    srv.stop().await;

    // A CA that did not sign Redis's certificate: refused, naming the key.
    let other = dir.path().join("other.pem");
    let ca = other.to_string_lossy();
    refused(
        &[
            ("ROOMCAST_CLUSTER__REDIS_URL", &url),
            ("ROOMCAST_CLUSTER__REDIS_CA_FILE", &ca),
        ],
        "cluster.redis_ca_file",
    )
    .await;
    redis.kill().await;
}

#[tokio::test]
async fn acl_credentials_are_used_and_wrong_ones_stop_the_node() {
    // Only an ACL user may connect: `default` is off.
    let acl: Vec<String> = "--user default off --user roomcast on >s3cret ~* &* +@all"
        .split(' ')
        .map(String::from)
        .collect();
    let redis = Redis::start_with(&acl).await;
    let mut config = common::test_config();
    config.cluster.redis_url = format!("redis://roomcast:s3cret@{}", redis.addr);
    let srv = TestServer::start(config).await;
    assert_eq!(srv.wait_metric("roomcast_broker_up", 1.0).await, 1.0);
    assert_eq!(stored(&srv).await, 2);
    srv.stop().await;

    let wrong = format!("redis://roomcast:wrong@{}", redis.addr);
    refused(
        &[("ROOMCAST_CLUSTER__REDIS_URL", &wrong)],
        "cluster.redis_url",
    )
    .await;
    redis.kill().await;
}

/// A Redis Cluster of three masters reached over TLS only (its bus too),
/// with an ACL user: a node in cluster mode on `rediss://user:password@…`
/// seeds with the private CA works; one that trusts another CA is refused
/// naming `cluster.redis_ca_file`, one with a wrong password naming
/// `cluster.redis_url`.
#[tokio::test]
async fn a_redis_cluster_over_tls_with_acl() {
    use common::redis_cluster::RedisCluster;
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let file = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let mut server: Vec<String> = [
        "--tls-port",
        "{port}",
        "--tls-cluster",
        "yes",
        "--tls-cert-file",
        &file("server.pem"),
        "--tls-key-file",
        &file("server.key"),
        "--tls-ca-cert-file",
        &file("ca.pem"),
        "--tls-auth-clients",
        "no",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    server.extend(
        "--user default off --user roomcast on >s3cret ~* &* +@all"
            .split(' ')
            .map(String::from),
    );
    let cli: Vec<String> = [
        "--tls",
        "--cacert",
        &file("ca.pem"),
        "--user",
        "roomcast",
        "--pass",
        "s3cret",
        "--no-auth-warning",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let cluster =
        tokio::task::spawn_blocking(move || RedisCluster::start_with(3, 0, &server, &cli))
            .await
            .unwrap();
    let seeds = |auth: &str| {
        cluster
            .nodes
            .iter()
            .map(|n| format!("rediss://{auth}@127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    };
    let url = seeds("roomcast:s3cret");
    let mut config = common::test_config();
    config.cluster.redis_mode = roomcast::config::RedisMode::Cluster;
    config.cluster.redis_url = url.clone();
    config.cluster.redis_ca_file = Some(dir.path().join("ca.pem"));
    let srv = TestServer::start(config).await;
    assert_eq!(srv.wait_metric("roomcast_broker_up", 1.0).await, 1.0);
    assert_eq!(stored(&srv).await, 2);
    srv.stop().await;

    let other = file("other.pem");
    refused(
        &[
            ("ROOMCAST_CLUSTER__REDIS_MODE", "cluster"),
            ("ROOMCAST_CLUSTER__REDIS_URL", &url),
            ("ROOMCAST_CLUSTER__REDIS_CA_FILE", &other),
        ],
        "cluster.redis_ca_file",
    )
    .await;
    let ca = file("ca.pem");
    refused(
        &[
            ("ROOMCAST_CLUSTER__REDIS_MODE", "cluster"),
            ("ROOMCAST_CLUSTER__REDIS_URL", &seeds("roomcast:wrong")),
            ("ROOMCAST_CLUSTER__REDIS_CA_FILE", &ca),
        ],
        "cluster.redis_url",
    )
    .await;
}
