//! A Redis Cluster losing a master under two roomcast nodes (real
//! redis-server processes on loopback ports, `cluster-node-timeout` 2 s):
//! a master with a replica SIGKILLed mid-chat (the replica takes over), and
//! a master without one SIGKILLed and started again. Rooms on the other
//! shards never stop; the killed shard's rooms behave as Redis-down does
//! (delivered on the sender's node, its sender told `not_stored`) and come
//! back by themselves; nothing is delivered twice or out of order.
//!
//! Needs `redis-server` and `redis-cli` (Debian packages): tests/run.sh
//! installs them.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::redis_cluster::{cli, keyslot, RedisCluster};
use common::{TestServer, V1};
use serde_json::json as j;
use tokio::time::Instant;

fn node_config(url: &str) -> roomcast::Config {
    let mut c = common::test_config();
    c.cluster.redis_mode = roomcast::config::RedisMode::Cluster;
    c.cluster.redis_url = url.to_string();
    c.cluster.presence_ttl = Duration::from_secs(3);
    c.limits.rate.messages_per_second = 0;
    c
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// One room per master (`chat/f<n>`), with the master's index.
fn room_per_master(cluster: &RedisCluster) -> Vec<(String, usize)> {
    let mut found: BTreeMap<usize, String> = BTreeMap::new();
    for n in 0..200 {
        let room = format!("chat/f{n}");
        let slot = keyslot(cluster.any_port(), &format!("roomcast:{{{room}}}:m"));
        found.entry(cluster.master_of(slot)).or_insert(room);
    }
    assert_eq!(found.len(), 3, "rooms on all three masters: {found:?}");
    found.into_iter().map(|(m, r)| (r, m)).collect()
}

/// A room with a sender on node a and a receiver on node b.
struct Room {
    name: String,
    sender: V1,
    receiver: V1,
    /// Every chat line the receiver got, in order.
    heard: Vec<String>,
    /// The offsets of the sender's stored messages, in order.
    acked: Vec<u64>,
    /// `reset` events the receiver got (its room's stream began again).
    resets: usize,
    next: u32,
}

/// What became of one publish.
#[derive(Debug, PartialEq)]
enum Sent {
    Stored(u64),
    NotStored,
}

impl Room {
    async fn open(a: &TestServer, b: &TestServer, name: &str) -> Room {
        let mut sender = V1::connect(a, "/chat", &[]).await;
        sender.join(name).await;
        let mut receiver = V1::connect(b, "/chat", &[]).await;
        receiver.join(name).await;
        Room {
            name: name.to_string(),
            sender,
            receiver,
            heard: Vec::new(),
            acked: Vec::new(),
            resets: 0,
            next: 0,
        }
    }

    /// Publish the next numbered line; its ack or its error.
    async fn publish(&mut self) -> (String, Sent) {
        self.next += 1;
        let text = format!("m{:04}", self.next);
        let id = self.next;
        self.sender
            .send(j!({"type": "publish", "room": self.name, "data": text, "id": id}))
            .await;
        loop {
            let ev = self.sender.recv().await;
            if ev["id"] != j!(id) {
                continue;
            }
            match ev["type"].as_str() {
                Some("ack") => {
                    let offset = ev["offset"].as_u64().expect("an offset");
                    self.acked.push(offset);
                    return (text, Sent::Stored(offset));
                }
                Some("error") => {
                    assert_eq!(ev["code"], "not_stored", "{}: {ev}", self.name);
                    return (text, Sent::NotStored);
                }
                _ => panic!("{}: unexpected answer {ev}", self.name),
            }
        }
    }

    /// Whether the receiver (on the other node) hears the line ending with
    /// `text` within `wait`, keeping every line it hears meanwhile.
    async fn heard_within(&mut self, text: &str, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(ev) = tokio::time::timeout(left, self.receiver.recv()).await else {
                return false;
            };
            if ev["type"] == "reset" {
                self.resets += 1;
            }
            if ev["type"] != "message" {
                continue;
            }
            let line = ev["data"]["data"].as_str().unwrap_or_default().to_string();
            if !line.contains(":m") {
                continue; // entries and exits
            }
            let done = line.ends_with(text);
            self.heard.push(line);
            if done {
                return true;
            }
        }
    }

    /// Publish until a line is stored and heard on the other node; how long
    /// that took from `since`.
    async fn until_back(&mut self, since: Instant, limit: Duration) -> Duration {
        loop {
            assert!(
                since.elapsed() < limit,
                "{}: not back within {limit:?} of the kill",
                self.name
            );
            let (text, sent) = self.publish().await;
            if let Sent::Stored(_) = sent {
                if self.heard_within(&text, Duration::from_millis(800)).await {
                    return since.elapsed();
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Nothing heard twice, nothing out of order; offsets only go up (in
    /// one stream: `resets` is how many times it is known to begin again).
    fn check_order(&self, resets: usize) {
        let numbers: Vec<u32> = self
            .heard
            .iter()
            .map(|l| l.rsplit(":m").next().unwrap().parse().unwrap())
            .collect();
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "{}: heard in order, once: {:?}",
            self.name,
            self.heard
        );
        let restarts = self.acked.windows(2).filter(|w| w[0] >= w[1]).count();
        assert_eq!(
            (restarts, self.resets),
            (resets, resets),
            "{}: offsets continue ({:?}), its stream began again {resets} times",
            self.name,
            self.acked
        );
    }
}

/// Every room of `rooms` but `except` delivers across nodes now.
async fn others_deliver(rooms: &mut [Room], except: &str) {
    for room in rooms.iter_mut().filter(|r| r.name != except) {
        let (text, sent) = room.publish().await;
        assert!(matches!(sent, Sent::Stored(_)), "{}: {sent:?}", room.name);
        assert!(
            room.heard_within(&text, Duration::from_secs(3)).await,
            "{}: cross-node delivery goes on while another shard is down",
            room.name
        );
    }
}

/// The master that owns a room's slot is SIGKILLed mid-chat: the other
/// shards' rooms go on across nodes during the failover, the room is back
/// (stored, delivered on the other node, offsets continuing) within 15 s
/// of the kill, and no receiver got anything twice or out of order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_fails_over_to_its_replica() {
    let mut cluster = blocking(|| RedisCluster::start(3, 1)).await;
    let config = node_config(&cluster.url());
    let a = TestServer::start(config.clone()).await;
    let b = TestServer::start(config).await;
    let placed = room_per_master(&cluster);
    let mut rooms = Vec::new();
    for (name, _) in &placed {
        rooms.push(Room::open(&a, &b, name).await);
    }
    for _ in 0..3 {
        for room in &mut rooms {
            let (text, sent) = room.publish().await;
            assert!(matches!(sent, Sent::Stored(_)), "{sent:?}");
            assert!(room.heard_within(&text, Duration::from_secs(5)).await);
        }
    }
    let (victim, master) = placed[0].clone();
    assert_eq!(
        cluster.replicas_of(master).len(),
        1,
        "the master has a replica"
    );
    // What the master acknowledged has reached its replica (Redis
    // replicates asynchronously: a write acknowledged in the last moment
    // before a crash can be lost; docs/cluster.md says so).
    let port = cluster.nodes[master].port;
    let waited = blocking(move || cli(port, &["WAIT", "1", "2000"])).await;
    assert_eq!(waited, "1", "the replica is in sync");
    cluster.kill(master);
    let killed = Instant::now();
    // The other shards during the failover (a replica takes over only
    // after cluster-node-timeout, 2 s).
    others_deliver(&mut rooms, &victim).await;
    let room = rooms.iter_mut().find(|r| r.name == victim).unwrap();
    let back = room.until_back(killed, Duration::from_secs(15)).await;
    eprintln!("{victim} back {back:?} after its master was killed");
    others_deliver(&mut rooms, &victim).await;
    for room in &rooms {
        room.check_order(0);
    }
    for n in [&a, &b] {
        assert_eq!(n.metric("roomcast_broker_up").await, 1.0);
    }
    a.stop().await;
    b.stop().await;
}

/// A master without a replica is SIGKILLed: its room's publishes are
/// delivered on the sender's node and answered `not_stored`, the other
/// shards' rooms go on; started again (empty: no persistence), the room is
/// back by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_without_a_replica_is_not_stored_until_it_is_back() {
    let mut cluster = blocking(|| RedisCluster::start(3, 0)).await;
    let config = node_config(&cluster.url());
    let a = TestServer::start(config.clone()).await;
    let b = TestServer::start(config).await;
    let placed = room_per_master(&cluster);
    let mut rooms = Vec::new();
    for (name, _) in &placed {
        rooms.push(Room::open(&a, &b, name).await);
    }
    for room in &mut rooms {
        let (text, sent) = room.publish().await;
        assert!(matches!(sent, Sent::Stored(_)), "{sent:?}");
        assert!(room.heard_within(&text, Duration::from_secs(5)).await);
    }
    let (victim, master) = placed[0].clone();
    cluster.kill(master);
    let room = rooms.iter_mut().find(|r| r.name == victim).unwrap();
    // Told, not lost silently: each publish is answered, and once the
    // shard is known to be down, with `not_stored`.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, sent) = room.publish().await;
        if sent == Sent::NotStored {
            break;
        }
        assert!(Instant::now() < deadline, "no not_stored within 10 s");
    }
    others_deliver(&mut rooms, &victim).await;
    assert!(a.metric("roomcast_broker_not_stored_total").await >= 1.0);
    let restarted = Instant::now();
    // Kept until the end (dropping it stops every node).
    let _cluster = blocking(move || {
        cluster.restart(master);
        cluster
    })
    .await;
    let room = rooms.iter_mut().find(|r| r.name == victim).unwrap();
    let back = room.until_back(restarted, Duration::from_secs(20)).await;
    eprintln!("{victim} back {back:?} after its master was started again");
    others_deliver(&mut rooms, &victim).await;
    // It came back empty (no persistence): the room's stream began again,
    // and its members were told.
    for room in &rooms {
        room.check_order(usize::from(room.name == victim));
    }
    a.stop().await;
    b.stop().await;
}
