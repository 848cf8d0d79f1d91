//! The broker contract: what every broker does, run against the memory
//! broker and against the cluster broker over a real redis-server and over
//! a real Redis Cluster of three masters (started here on loopback ports;
//! Debian's `redis-server`, which tests/run.sh installs). Each case runs on
//! all three, from the outside: a hub with members,
//! the trait's methods, and what reaches the members' outboxes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{Broker, Draft, MemoryBroker, RedisBroker, Resume};
use crate::config::{Config, RoomPolicy};
use crate::hub::{test_handle, Handle, Hub, Member, Target};
use crate::metrics::Metrics;
use crate::payload::Payload;
use crate::wire::{frame, Author, Position, PresenceMember, Wire};

/// How long a delivery may take (the cluster broker's go through Redis).
const WAIT: Duration = Duration::from_secs(5);

#[path = "../../tests/common/redis_server.rs"]
mod redis_server;
use redis_server::RedisServer;
#[path = "../../tests/common/redis_cluster.rs"]
#[allow(dead_code)]
mod redis_cluster;
use redis_cluster::RedisCluster;

/// What a broker under test reaches (stopped when the subject is dropped).
#[allow(dead_code)]
enum Backing {
    Memory,
    Redis(RedisServer),
    Cluster(RedisCluster),
}

/// A broker under test with its hub (and its Redis, if it has one).
struct Subject {
    hub: Arc<Hub>,
    broker: Arc<dyn Broker>,
    _redis: Backing,
}

fn config(policies: &[RoomPolicy]) -> Config {
    Config {
        rooms: policies.to_vec(),
        ..Config::default()
    }
}

async fn memory(policies: &[RoomPolicy]) -> Subject {
    let metrics = Metrics::new();
    let hub = Arc::new(Hub::new(metrics.clone()));
    let broker = MemoryBroker::new(
        hub.clone(),
        &config(policies),
        metrics.history_bytes.clone(),
    );
    Subject {
        hub,
        broker: Arc::new(broker),
        _redis: Backing::Memory,
    }
}

async fn redis(policies: &[RoomPolicy]) -> Subject {
    let redis = RedisServer::start();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    on_redis(policies, url, Backing::Redis(redis)).await
}

/// A Redis Cluster of three masters (the rooms of a case spread over them).
async fn redis_cluster(policies: &[RoomPolicy]) -> Subject {
    let cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 0))
        .await
        .unwrap();
    let url = cluster.url();
    let mut subject = on_redis_mode(
        policies,
        url,
        crate::config::RedisMode::Cluster,
        Backing::Memory,
    )
    .await;
    subject._redis = Backing::Cluster(cluster);
    subject
}

async fn on_redis(policies: &[RoomPolicy], url: String, backing: Backing) -> Subject {
    on_redis_mode(policies, url, crate::config::RedisMode::Single, backing).await
}

async fn on_redis_mode(
    policies: &[RoomPolicy],
    url: String,
    mode: crate::config::RedisMode,
    backing: Backing,
) -> Subject {
    let metrics = Metrics::new();
    let hub = Arc::new(Hub::new(metrics.clone()));
    let mut config = config(policies);
    config.cluster.redis_url = url;
    config.cluster.redis_mode = mode;
    let broker = RedisBroker::new(hub.clone(), &config, &metrics).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), broker.ready().get())
        .await
        .expect("the broker is ready in time");
    assert_eq!(metrics.broker_up.get(), 1, "the broker reached Redis");
    Subject {
        hub,
        broker: Arc::new(broker),
        _redis: backing,
    }
}

impl Subject {
    /// A member `nick` (of `user`, if given) joins `room` here, as a session would.
    fn join(&self, room: &str, id: u64, nick: &str, user: Option<&str>) -> Handle {
        let mut h = test_handle(node_conn(&self.broker, id), Wire::Raw, 64);
        h.user = user.map(Arc::from);
        self.hub.register(h.clone());
        let (r, first) = self
            .hub
            .join(
                room,
                Member::live(h.clone(), nick.into()),
                &Arc::new(RoomPolicy::default()),
            )
            .unwrap();
        self.broker
            .joined(r.name_arc(), &member(nick, user), h.id, first);
        h
    }

    async fn publish(&self, room: &str, text: &str) -> u64 {
        let draft = Draft {
            from: Author::server(),
            payload: Payload::Text(text.into()),
            except: None,
        };
        self.broker
            .publish(&room.into(), draft)
            .get()
            .await
            .unwrap()
    }
}

/// Connection `n` (from 1) of `broker`'s node.
fn node_conn(broker: &Arc<dyn Broker>, n: u64) -> u64 {
    crate::ids::ConnIds::new().next(broker.node()) + n - 1
}

fn member(nick: &str, user: Option<&str>) -> PresenceMember {
    PresenceMember {
        user: user.map(Arc::from),
        nick: nick.into(),
        conns: 1,
    }
}

/// The next `n` items queued for `h`, waiting for them.
async fn items(h: &Handle, n: usize) -> Vec<Bytes> {
    let mut got: Vec<Bytes> = Vec::new();
    tokio::time::timeout(WAIT, async {
        while got.len() < n {
            let mut batch = VecDeque::new();
            h.outbox.take(&mut batch);
            got.extend(batch.iter().map(|i| i.parts().0));
            if got.len() < n {
                h.outbox.wait().await;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{n} items in time, got {}", got.len()));
    got
}

async fn offsets_count_up_and_members_get_every_message_in_order(s: Subject) {
    let a = s.join("chat/a", 1, "a", None);
    let b = s.join("chat/a", 2, "b", None);
    s.broker
        .recover(&"chat/a".into(), None)
        .get()
        .await
        .unwrap();
    let mut acks = Vec::new();
    for t in ["one", "two", "three"] {
        acks.push(s.publish("chat/a", t).await);
    }
    assert_eq!(acks, [1, 2, 3]);
    let want: Vec<Bytes> = ["one", "two", "three"]
        .iter()
        .map(|t| frame::text(t))
        .collect();
    assert_eq!(items(&a, 3).await, want);
    assert_eq!(items(&b, 3).await, want);
}

async fn history_keeps_the_latest(s: Subject) {
    s.join("chat/h", 1, "a", None);
    for t in ["one", "two", "three"] {
        s.publish("chat/h", t).await;
    }
    let h = s
        .broker
        .history("chat/h", None, 10)
        .get()
        .await
        .unwrap()
        .unwrap();
    let offsets: Vec<u64> = h.publications.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, [2, 3], "history_size 2 keeps the last two");
    let h = s
        .broker
        .history("chat/h", Some(2), 10)
        .get()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h.publications.len(), 1);
    let h = s
        .broker
        .history("chat/h", None, 1)
        .get()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(h.publications[0].offset, 3, "the latest");
    assert!(s
        .broker
        .history("chat/none", None, 10)
        .get()
        .await
        .unwrap()
        .is_none());
}

async fn resume_follows_the_epoch_rule(s: Subject) {
    s.join("chat/r", 1, "a", None);
    let room: Arc<str> = "chat/r".into();
    let first = s.broker.recover(&room, None).get().await.unwrap();
    assert_eq!((first.offset, &first.resume), (0, &Resume::NotAsked));
    for t in ["one", "two", "three"] {
        s.publish("chat/r", t).await;
    }
    let at = |offset, epoch: &str| Position {
        epoch: epoch.to_string(),
        offset,
    };
    let epoch = first.epoch.to_string();
    let r = s
        .broker
        .recover(&room, Some(&at(1, &epoch)))
        .get()
        .await
        .unwrap();
    assert_eq!(r.resume, Resume::Resumed);
    assert_eq!(r.offset, 3);
    assert_eq!(
        r.missed.iter().map(|p| p.offset).collect::<Vec<_>>(),
        [2, 3]
    );
    let r = s
        .broker
        .recover(&room, Some(&at(3, &epoch)))
        .get()
        .await
        .unwrap();
    assert_eq!((r.resume, r.missed.len()), (Resume::Resumed, 0));
    let r = s
        .broker
        .recover(&room, Some(&at(1, "other")))
        .get()
        .await
        .unwrap();
    assert_eq!(r.resume, Resume::Failed("epoch changed"));
    let r = s
        .broker
        .recover(&room, Some(&at(9, &epoch)))
        .get()
        .await
        .unwrap();
    assert_eq!(r.resume, Resume::Failed("position is ahead of the room"));
    // history_size 2: offset 1 is gone, so a client at 0 cannot resume.
    let r = s
        .broker
        .recover(&room, Some(&at(0, &epoch)))
        .get()
        .await
        .unwrap();
    assert_eq!(r.resume, Resume::Failed("position too old"));
    assert!(r.missed.is_empty());
}

async fn presence_lists_a_user_once_with_its_connections(s: Subject) {
    s.join("chat/p", 1, "ann", Some("u-ann"));
    s.join("chat/p", 2, "ann", Some("u-ann"));
    s.join("chat/p", 3, "guest", None);
    let wait_for = |want: usize| {
        let broker = s.broker.clone();
        async move {
            // Presence writes are ordered but need not be done when joined() returns.
            tokio::time::timeout(WAIT, async {
                loop {
                    let p = broker
                        .presence("chat/p")
                        .get()
                        .await
                        .unwrap()
                        .unwrap_or_default();
                    if p.len() == want && p.iter().map(|m| m.conns).sum::<usize>() == 3 {
                        return p;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
            .expect("presence settles")
        }
    };
    let mut p = wait_for(2).await;
    p.sort_by(|a, b| a.nick.cmp(&b.nick));
    assert_eq!(
        (&*p[0].nick, p[0].conns, p[0].user.as_deref()),
        ("ann", 2, Some("u-ann"))
    );
    assert_eq!((&*p[1].nick, p[1].conns), ("guest", 1));
    assert!(s
        .broker
        .presence("chat/nobody")
        .get()
        .await
        .unwrap()
        .is_none());
}

async fn route_numbers_count_per_route(s: Subject) {
    assert_eq!(s.broker.next_seq("chat").get().await, Ok(1));
    assert_eq!(s.broker.next_seq("chat").get().await, Ok(2));
    assert_eq!(s.broker.next_seq("echo").get().await, Ok(1));
}

async fn direct_sends_and_disconnects_reach_their_connection(s: Subject) {
    let a = s.join("chat/d", 1, "a", Some("u-a"));
    s.broker.send(
        Target::User("u-a".into()),
        Author::server(),
        Payload::Text("psst".into()),
    );
    assert_eq!(items(&a, 1).await, [frame::text("psst")]);
    let n = s
        .broker
        .disconnect(Target::Conn(a.id), 4000, "bye")
        .get()
        .await;
    assert_eq!(n, Ok(1));
    assert!(a.outbox.is_closing());
}

fn history_two() -> Vec<RoomPolicy> {
    vec![RoomPolicy {
        pattern: "*".into(),
        history_size: 2,
        ..RoomPolicy::default()
    }]
}

/// Each case, on both brokers.
macro_rules! contract {
    ($($case:ident $(with $policies:expr)?;)*) => {
        mod memory_broker {
            use super::*;
            $(#[tokio::test]
            async fn $case() {
                super::$case(memory(&contract!(@p $($policies)?)).await).await
            })*
        }
        mod redis_broker {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(redis(&contract!(@p $($policies)?)).await).await
            })*
        }
        mod redis_cluster_broker {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case(redis_cluster(&contract!(@p $($policies)?)).await).await
            })*
        }
    };
    (@p $p:expr) => { $p };
    (@p) => { Vec::<RoomPolicy>::new() };
}

contract! {
    offsets_count_up_and_members_get_every_message_in_order;
    history_keeps_the_latest with history_two();
    resume_follows_the_epoch_rule with history_two();
    presence_lists_a_user_once_with_its_connections;
    route_numbers_count_per_route;
    direct_sends_and_disconnects_reach_their_connection;
}
