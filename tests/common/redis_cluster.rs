//! A real Redis Cluster on loopback ports: redis-server processes with
//! `--cluster-enabled yes` (Debian's `redis-server`; tests/run.sh installs
//! it), joined by `redis-cli --cluster create`, each node SIGKILLed when
//! dropped. `cluster-node-timeout` is 2 s, so a replica takes over a dead
//! master within a few seconds; `cluster-require-full-coverage no`, so the
//! shards that are up go on serving while one is down. Plain std, no
//! runtime: shared by the broker contract suite and the cluster tests.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::redis_server::RedisServer;

/// A cluster node: its process, and where its cluster state is kept (so
/// it can be started again as the same node).
pub struct ClusterNode {
    pub port: u16,
    server: Option<RedisServer>,
    conf: PathBuf,
}

/// A Redis Cluster of `masters` shards with `replicas` replicas each.
pub struct RedisCluster {
    pub nodes: Vec<ClusterNode>,
    _dir: tempfile::TempDir,
    /// More redis-server arguments for every node (TLS, ACL users).
    extra: Vec<String>,
    /// More redis-cli arguments to reach them (`--tls --cacert …`, `--user`).
    cli_args: Vec<String>,
}

/// A node's arguments; each node has a directory of its own (a replica's
/// full sync goes through a file there).
fn node_args(conf: &std::path::Path) -> Vec<String> {
    let dir = conf.with_extension("d");
    std::fs::create_dir_all(&dir).unwrap();
    // The cluster bus on a free port of its own (by default it is the
    // client port + 10000, which is past 65535 for a high ephemeral port).
    let bus = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    [
        "--cluster-port",
        &bus,
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        &conf.display().to_string(),
        "--cluster-node-timeout",
        "2000",
        "--cluster-require-full-coverage",
        "no",
        "--repl-diskless-sync-delay",
        "0",
        "--dir",
        &dir.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `redis-cli -p port args…`, its output.
pub fn cli(port: u16, args: &[&str]) -> String {
    cli_with(&[], port, args)
}

/// The same with more redis-cli arguments first (`--tls`, `--user`).
fn cli_with(opts: &[String], port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(opts)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli (Debian package redis-tools; tests/run.sh installs it)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The hash slot Redis Cluster gives `key`.
pub fn keyslot(port: u16, key: &str) -> u16 {
    cli(port, &["CLUSTER", "KEYSLOT", key])
        .parse()
        .expect("CLUSTER KEYSLOT answers a number")
}

impl RedisCluster {
    /// Start and join the cluster; returns once every node says
    /// `cluster_state:ok` and agrees on all 16384 slots.
    pub fn start(masters: usize, replicas: usize) -> RedisCluster {
        RedisCluster::start_with(masters, replicas, &[], &[])
    }

    /// The same with more redis-server arguments for every node (`{port}`:
    /// its port; `--tls-port {port}` makes it TLS only) and the redis-cli
    /// arguments that reach such nodes.
    pub fn start_with(
        masters: usize,
        replicas: usize,
        extra: &[String],
        cli_args: &[String],
    ) -> RedisCluster {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for i in 0..masters * (1 + replicas) {
            let conf = dir.path().join(format!("nodes-{i}.conf"));
            let mut args = node_args(&conf);
            args.extend_from_slice(extra);
            let server = RedisServer::start_with(&args);
            nodes.push(ClusterNode {
                port: server.port,
                server: Some(server),
                conf,
            });
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(cli_args)
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("[OK] All 16384 slots covered"),
            "redis-cli --cluster create failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = RedisCluster {
            nodes,
            _dir: dir,
            extra: extra.to_vec(),
            cli_args: cli_args.to_vec(),
        };
        cluster.wait_ok(masters * (1 + replicas));
        cluster.wait_replicas_synced();
        cluster
    }

    /// The seed URLs of every node that is up, comma-separated (what
    /// `cluster.redis_url` takes).
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .filter(|n| n.server.is_some())
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A node that is up.
    pub fn any_port(&self) -> u16 {
        self.nodes
            .iter()
            .find(|n| n.server.is_some())
            .expect("a node is up")
            .port
    }

    /// Wait (at most 30 s) until every node that is up says the cluster is
    /// ok and knows `known` nodes.
    fn wait_ok(&self, known: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = self.nodes.iter().filter(|n| n.server.is_some()).all(|n| {
                let info = self.cli(n.port, &["CLUSTER", "INFO"]);
                info.contains("cluster_state:ok")
                    && info.contains("cluster_slots_assigned:16384")
                    && info.contains(&format!("cluster_known_nodes:{known}"))
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Redis Cluster did not settle in 30 s:\n{}",
                self.cli(self.any_port(), &["CLUSTER", "NODES"])
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait (at most 30 s) until every replica's link to its master is up.
    fn wait_replicas_synced(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for n in self.nodes.iter().filter(|n| n.server.is_some()) {
            loop {
                let info = self.cli(n.port, &["INFO", "replication"]);
                if info.contains("role:master") || info.contains("master_link_status:up") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "a replica did not sync in 30 s:\n{info}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// `redis-cli` to node `port` as this cluster needs.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        cli_with(&self.cli_args, port, args)
    }

    /// The index (in `nodes`) of the master that serves `slot` now.
    pub fn master_of(&self, slot: u16) -> usize {
        let port = self.master_port_of(slot).expect("the slot has a master");
        self.nodes
            .iter()
            .position(|n| n.port == port)
            .expect("the master is one of ours")
    }

    /// The port of the master that serves `slot`, as a live node sees it.
    pub fn master_port_of(&self, slot: u16) -> Option<u16> {
        let nodes = self.cli(self.any_port(), &["CLUSTER", "NODES"]);
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let port: u16 = fields[1]
                .split('@')
                .next()?
                .rsplit(':')
                .next()?
                .parse()
                .ok()?;
            let serves = fields[8..].iter().any(|range| {
                let mut ends = range.split('-');
                let lo: u16 = ends.next().and_then(|s| s.parse().ok()).unwrap_or(u16::MAX);
                let hi: u16 = ends.next().and_then(|s| s.parse().ok()).unwrap_or(lo);
                (lo..=hi).contains(&slot)
            });
            if serves {
                return Some(port);
            }
        }
        None
    }

    /// The indexes of the replicas of the master at `master`.
    pub fn replicas_of(&self, master: usize) -> Vec<usize> {
        let id = self.cli(self.nodes[master].port, &["CLUSTER", "MYID"]);
        let nodes = self.cli(self.any_port(), &["CLUSTER", "NODES"]);
        nodes
            .lines()
            .filter(|l| l.split_whitespace().nth(3) == Some(id.as_str()))
            .filter_map(|l| {
                let addr = l.split_whitespace().nth(1)?;
                let port: u16 = addr.split('@').next()?.rsplit(':').next()?.parse().ok()?;
                self.nodes.iter().position(|n| n.port == port)
            })
            .collect()
    }

    /// SIGKILL node `i` (it stays down until [`RedisCluster::restart`]).
    pub fn kill(&mut self, i: usize) {
        drop(self.nodes[i].server.take());
    }

    /// Start node `i` again as the same cluster node (its cluster state
    /// file), on a fresh port: the others learn the address by gossip. Its
    /// data is gone (no persistence). Returns once the cluster is ok.
    pub fn restart(&mut self, i: usize) {
        let conf = self.nodes[i].conf.clone();
        let mut args = node_args(&conf);
        args.extend_from_slice(&self.extra);
        let server = RedisServer::start_with(&args);
        self.nodes[i].port = server.port;
        self.nodes[i].server = Some(server);
        let known = self.nodes.len();
        self.wait_ok(known);
    }
}
