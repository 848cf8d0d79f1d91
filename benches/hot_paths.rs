//! Micro-benchmarks of the hot paths: a script hook call, fan-out of one
//! message to 1000 outboxes, frame encoding and decoding.
//!
//! ```text
//! cargo bench --bench hot_paths
//! ```

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::sync::Arc;

use roomcast::internals::{
    frame, Author, Broker, Decoder, Draft, Handle, Hub, Member, MemoryBroker, Outbox, Payload, Wire,
};
use roomcast::script::{Conn as ScriptConn, Hook, TextArgs};
use roomcast::{Config, Server};

/// One `on_message` call per iteration, each shipped script as it runs
/// (its hooks lowered to Rust: `script::lower`) and through Rhai's
/// interpreter (`scripts.fast_hooks = false`).
fn script_hook(c: &mut Criterion) {
    let mut g = c.benchmark_group("script");
    for fast in [true, false] {
        let mut config = Config::default();
        config.scripts.fast_hooks = fast;
        let server = Server::new(config).expect("builtin scripts");
        let host = server.scripts();
        for name in ["echo.rhai", "shout.rhai", "chat.rhai"] {
            let script = host.script(name).unwrap();
            let conn = ScriptConn::new(1, 1, "bench", "bench/lobby", "user1");
            let mut out = Vec::new();
            let how = if fast { "" } else { " (Rhai)" };
            g.bench_function(format!("on_message {name}{how}"), |b| {
                b.iter(|| on_message(host, &script, &conn, &mut out))
            });
        }
    }
    g.finish();
}

/// One `on_message` call with the benchmarks' text; its actions are dropped.
fn on_message(
    host: &roomcast::script::ScriptHost,
    script: &roomcast::script::Script,
    conn: &ScriptConn,
    out: &mut Vec<roomcast::script::Action>,
) {
    // As the session calls it: Rhai values are made only if Rhai runs it.
    host.call(
        script,
        Hook::Message,
        conn,
        TextArgs("hello roomcast 12345"),
        out,
    );
    out.clear();
}

/// Do one server's hook calls scale across threads? 20 000 shout calls per
/// thread, on 1 or 2 threads, through one script host or two. (With one
/// `Engine` and `AST` shared by all threads they did not: see
/// benches/ANALYSIS.md; the host now keeps an engine per worker thread.)
fn script_scaling(c: &mut Criterion) {
    const CALLS: u64 = 20_000;
    // Through Rhai: this is about its engines, not the lowered hooks.
    let rhai = || {
        let mut config = Config::default();
        config.scripts.fast_hooks = false;
        Server::new(config).expect("builtin scripts")
    };
    let shared = rhai();
    let own: Vec<Server> = (0..2).map(|_| rhai()).collect();
    let run = |server: &Server| {
        let host = server.scripts();
        let script = host.script("shout.rhai").unwrap();
        let conn = ScriptConn::new(1, 1, "bench", "bench/lobby", "user1");
        let mut out = Vec::new();
        for _ in 0..CALLS {
            on_message(host, &script, &conn, &mut out);
        }
    };
    let mut g = c.benchmark_group("script scaling");
    g.sample_size(10);
    g.throughput(Throughput::Elements(CALLS));
    g.bench_function("1 thread", |b| b.iter(|| run(&shared)));
    g.throughput(Throughput::Elements(2 * CALLS));
    g.bench_function("2 threads, one script host", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                s.spawn(|| run(&shared));
                s.spawn(|| run(&shared));
            })
        })
    });
    g.bench_function("2 threads, a script host each", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                s.spawn(|| run(&own[0]));
                s.spawn(|| run(&own[1]));
            })
        })
    });
    g.finish();
}

fn fan_out(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout");
    g.throughput(Throughput::Elements(1000));
    let metrics = roomcast::metrics::Metrics::new();
    // A raw room without history: what the seed's chat costs per broadcast,
    // through the broker (offset, then delivery by the hub).
    let policy = roomcast::config::RoomPolicy {
        history_size: 0,
        ..Default::default()
    };
    let config = Config {
        rooms: vec![policy.clone()],
        ..Config::default()
    };
    let policy = Arc::new(policy);
    g.bench_function("publish to 1000 raw members", |b| {
        b.iter_batched(
            || {
                let hub = Arc::new(Hub::new(metrics.clone()));
                let broker = MemoryBroker::new(hub.clone(), &config, metrics.history_bytes.clone());
                for id in 1..=1000u64 {
                    let handle = Handle {
                        id,
                        wire: Wire::Raw,
                        offsets: false,
                        deflate: None,
                        user: None,
                        outbox: Outbox::new(1024, 1 << 20, metrics.slow_consumers.clone()),
                    };
                    let member = Member::live(handle, format!("user{id}").into());
                    hub.join("bench/room", member, &policy).unwrap();
                }
                let draft = Draft {
                    from: Author::server(),
                    payload: Payload::Json(r#"{"data":"user1:hello","type":"message"}"#.into()),
                    except: None,
                };
                (hub, broker, draft)
            },
            |(_hub, broker, draft)| {
                let room: Arc<str> = "bench/room".into();
                black_box(broker.publish(&room, draft))
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn frames(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    let small = "x".repeat(20);
    let large = "x".repeat(16 * 1024);
    g.bench_function("encode text 20 B", |b| {
        b.iter(|| frame::text(black_box(&small)))
    });
    g.bench_function("encode text 16 KiB", |b| {
        b.iter(|| frame::text(black_box(&large)))
    });

    // Decode 100 masked 20-byte text frames from memory.
    let mut wire = Vec::new();
    for _ in 0..100 {
        wire.extend_from_slice(&[0x81, 0x80 | 20, 1, 2, 3, 4]);
        wire.extend(
            small
                .bytes()
                .enumerate()
                .map(|(i, b)| b ^ [1, 2, 3, 4][i % 4]),
        );
    }
    g.throughput(Throughput::Elements(100));
    g.bench_function("decode 100 text frames of 20 B", |b| {
        b.iter(|| {
            let mut d = Decoder::new(1 << 16, 1 << 16);
            let mut input = &wire[..];
            while let Some(m) = d.next(&mut input).unwrap() {
                black_box(m);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, script_hook, script_scaling, fan_out, frames);
criterion_main!(benches);
