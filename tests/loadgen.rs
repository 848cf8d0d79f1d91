//! The load generator (benches/load) never rots: its modules' unit tests run
//! here, and each scenario makes a short, tiny run against a real roomcast.
//! No timing figure is asserted, only that traffic flowed without errors.

#![allow(dead_code)]

mod common;

#[path = "../benches/load/proto.rs"]
mod proto;
#[path = "../benches/load/report.rs"]
mod report;
#[path = "../benches/load/scenario.rs"]
mod scenario;
#[path = "../benches/load/stats.rs"]
mod stats;
#[path = "../benches/load/wire.rs"]
mod wire;

use std::time::Duration;

use common::TestServer;

async fn server() -> TestServer {
    let mut config = common::test_config();
    config.limits.rate.messages_per_second = 0;
    TestServer::start(config).await
}

fn opts(srv: &TestServer, path: &str) -> scenario::Opts {
    let target = wire::Target::parse(&srv.url(path)).unwrap();
    scenario::Opts {
        targets: vec![target.clone()],
        target,
        proto: proto::Proto::Raw,
        case: "smoke".into(),
        server: "roomcast".into(),
        conns: 4,
        size: 20,
        inflight: 2,
        warmup: Duration::from_millis(100),
        duration: Duration::from_millis(300),
        rate: 0.0,
        pid: Some(std::process::id()),
        concurrency: 4,
        flood: 0,
        frozen: 0,
        flood_target: None,
        quiet: true,
        rooms: 0,
        hold: Duration::from_millis(100),
    }
}

/// echo: messages flow on every connection.
#[tokio::test]
async fn echo_scenario_smoke() {
    let srv = server().await;
    let r = scenario::echo(&opts(&srv, "/shout")).await.unwrap();
    assert!(r.rate > 0.0 && r.errors == 0, "{r:?}");
    srv.stop().await;
}

/// fair: the steady connections' round trips are measured beside a
/// flooder, on an echo route (default config: no limit) and in chat rooms
/// (the flooder held back by the rate limit, not closed: no errors).
#[tokio::test]
async fn fair_scenario_smoke() {
    let srv = TestServer::start(common::test_config()).await;
    let mut o = opts(&srv, "/echo");
    o.flood = 1;
    let r = scenario::fair(&o).await.unwrap();
    assert!(r.rate > 0.0 && r.errors == 0, "{r:?}");
    assert!(r.p99_us.is_some_and(|p| p > 0.0), "{r:?}");
    let mut o = opts(&srv, "/chat/a");
    o.targets = ["/chat/a", "/chat/b", "/chat/c", "/chat/d"]
        .iter()
        .map(|p| wire::Target::parse(&srv.url(p)).unwrap())
        .collect();
    o.flood = 1;
    o.flood_target = Some(wire::Target::parse(&srv.url("/chat/flood")).unwrap());
    let r = scenario::fair(&o).await.unwrap();
    assert!(r.rate > 0.0 && r.errors == 0, "{r:?}");
    assert!(
        srv.metric("roomcast_rate_limit_waits_total").await > 0.0,
        "the flooder was held back"
    );
    assert_eq!(srv.metric("roomcast_rate_limit_closes_total").await, 0.0);
    srv.stop().await;
}

/// fanout: closed-loop rounds complete in a chat room.
#[tokio::test]
async fn fanout_scenario_smoke() {
    let srv = server().await;
    let r = scenario::fanout(&opts(&srv, "/chat/smoke")).await.unwrap();
    assert!(r.rate > 0.0 && r.errors == 0, "{r:?}");
    srv.stop().await;
}

/// socket.io: echo through the `/shout` namespace and a fan-out round in
/// the default namespace, as the load generator speaks it.
#[tokio::test]
async fn socketio_scenarios_smoke() {
    let srv = server().await;
    let mut o = opts(&srv, "/shout");
    o.proto = proto::Proto::SocketIo("/").for_target(&o.target);
    assert_eq!(o.proto, proto::Proto::SocketIo("/shout"));
    let r = scenario::echo(&o).await.unwrap();
    assert!(r.rate > 0.0 && r.errors == 0, "{r:?}");
    let mut o = opts(&srv, "/");
    o.proto = proto::Proto::SocketIo("/");
    let r = scenario::fanout(&o).await.unwrap();
    assert!(r.rate > 0.0 && r.errors == 0, "{r:?}");
    srv.stop().await;
}

/// latency: timestamps come back and percentiles are computed.
#[tokio::test]
async fn latency_scenario_smoke() {
    let srv = server().await;
    let o = scenario::Opts {
        rate: 200.0,
        ..opts(&srv, "/chat/smoke")
    };
    let r = scenario::latency(&o).await.unwrap();
    assert!(r.rate > 0.0 && r.errors == 0, "{r:?}");
    assert!(r.p50_us.is_some() && r.p99_us >= r.p50_us, "{r:?}");
    srv.stop().await;
}

/// idle: connections are held and RSS is read.
#[tokio::test]
async fn idle_scenario_smoke() {
    let srv = server().await;
    let o = scenario::Opts {
        conns: 20,
        duration: Duration::from_millis(10),
        ..opts(&srv, "/echo")
    };
    let r = scenario::idle(&o).await.unwrap();
    assert_eq!((r.rate, r.errors), (20.0, 0), "{r:?}");
    assert!(r.rss_per_conn.is_some());
    srv.stop().await;
}

/// idle with --rooms: the connections are spread over that many rooms and
/// held for --hold.
#[tokio::test]
async fn idle_connections_spread_over_rooms() {
    let srv = server().await;
    let o = scenario::Opts {
        conns: 12,
        rooms: 3,
        hold: Duration::from_secs(30),
        ..opts(&srv, "/chat/r")
    };
    let held = tokio::spawn(async move { scenario::idle(&o).await.unwrap() });
    srv.wait_metric("roomcast_connections", 12.0).await;
    let want: Vec<(String, usize)> = (0..3).map(|i| (format!("chat/r{i}"), 4)).collect();
    assert_eq!(srv.server.rooms(), want);
    held.abort();
    srv.stop().await;
}

/// churn: connect + upgrade + close cycles complete.
#[tokio::test]
async fn churn_scenario_smoke() {
    let srv = server().await;
    let o = scenario::Opts {
        concurrency: 2,
        ..opts(&srv, "/echo")
    };
    let r = scenario::churn(&o).await.unwrap();
    assert!(r.rate > 0.0 && r.errors == 0, "{r:?}");
    srv.stop().await;
}

/// storm: every client is upgraded, the time and the client's own CPU share
/// over it are recorded.
#[tokio::test]
async fn storm_scenario_smoke() {
    let srv = server().await;
    let o = scenario::Opts {
        conns: 200,
        ..opts(&srv, "/echo")
    };
    let r = scenario::storm(&o).await.unwrap();
    assert!(r.rate > 0.0 && r.errors == 0, "{r:?}");
    assert!(
        r.took_s.is_some_and(|t| t > 0.0) && r.p99_us.is_some(),
        "{r:?}"
    );
    assert!(scenario::measured_cpu().is_some_and(|c| c >= 0.0));
    assert_eq!(srv.metric("roomcast_connections_opened_total").await, 200.0);
    srv.stop().await;
}

/// The load generator's CPU clock moves when it works. (It counts the whole
/// process, and tests run in parallel threads of one process, so only a
/// lower bound holds here.)
#[test]
fn cpu_seconds_count_work() {
    let t0 = (stats::cpu_seconds(), std::time::Instant::now());
    let mut x = 0u64;
    while stats::cpu_seconds() < t0.0 + 0.2 && t0.1.elapsed() < std::time::Duration::from_secs(10) {
        for _ in 0..10_000 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
    }
    std::hint::black_box(x);
    let t1 = (stats::cpu_seconds(), std::time::Instant::now());
    assert!(
        t1.0 >= t0.0 + 0.2,
        "0.2 s of CPU burnt, the clock says {}",
        t1.0 - t0.0
    );
    let share = stats::cpu_share(t0, t1);
    assert!(share > 0.1, "{share}");
}

/// fanout over two cluster nodes (`--url a,b`): members alternate between
/// the nodes, and every member gets every message across them.
#[tokio::test]
async fn fanout_across_cluster_nodes_smoke() {
    let redis = common::redis::TestRedis::start().await;
    let mut config = common::test_config();
    config.limits.rate.messages_per_second = 0;
    config.cluster.redis_url = redis.url();
    let a = TestServer::start(config.clone()).await;
    let b = TestServer::start(config).await;
    let targets = vec![
        wire::Target::parse(&a.url("/chat/smoke")).unwrap(),
        wire::Target::parse(&b.url("/chat/smoke")).unwrap(),
    ];
    let o = scenario::Opts {
        targets,
        ..opts(&a, "/chat/smoke")
    };
    let r = scenario::fanout(&o).await.unwrap();
    assert!(r.rate > 0.0 && r.errors == 0, "{r:?}");
    a.stop().await;
    b.stop().await;
}
