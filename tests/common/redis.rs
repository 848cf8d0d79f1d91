//! A real redis-server for the cluster tests (Debian's `redis-server`;
//! tests/run.sh installs it), reached through a proxy that holds one
//! loopback port for the whole test, so Redis can be killed and started
//! again (on a fresh port of its own) while the nodes keep their URL.

use std::net::SocketAddr;

use tokio::process::Command;

pub use super::proxy::Proxy;

use super::redis_server::RedisServer;

/// One redis-server process.
pub struct Redis {
    pub addr: SocketAddr,
    server: RedisServer,
}

impl Redis {
    /// Start redis-server on a free loopback port (off the runtime's
    /// thread: the nodes under test keep running meanwhile).
    pub async fn start() -> Redis {
        let server = tokio::task::spawn_blocking(RedisServer::start)
            .await
            .unwrap();
        Redis {
            addr: SocketAddr::from(([127, 0, 0, 1], server.port)),
            server,
        }
    }

    /// The same, with more redis-server arguments (`{port}`: its port).
    pub async fn start_with(args: &[String]) -> Redis {
        let args = args.to_vec();
        let server = tokio::task::spawn_blocking(move || RedisServer::start_with(&args))
            .await
            .unwrap();
        Redis {
            addr: SocketAddr::from(([127, 0, 0, 1], server.port)),
            server,
        }
    }

    /// SIGKILL it and wait until it is gone.
    pub async fn kill(self) {
        tokio::task::spawn_blocking(move || drop(self.server))
            .await
            .unwrap();
    }
}

/// Redis behind a proxy: what a cluster test starts.
pub struct TestRedis {
    pub redis: Option<Redis>,
    pub proxy: Proxy,
}

impl TestRedis {
    pub async fn start() -> TestRedis {
        let redis = Redis::start().await;
        let proxy = Proxy::new(redis.addr).await;
        TestRedis {
            redis: Some(redis),
            proxy,
        }
    }

    pub fn url(&self) -> String {
        self.proxy.url()
    }

    /// SIGKILL Redis: the nodes' connections drop and new ones are refused.
    pub async fn kill(&mut self) {
        self.proxy.point_to(None);
        if let Some(r) = self.redis.take() {
            r.kill().await;
        }
    }

    /// A new, empty Redis behind the same URL.
    pub async fn restart(&mut self) {
        let redis = Redis::start().await;
        self.proxy.point_to(Some(redis.addr));
        self.redis = Some(redis);
    }

    /// A connection for the test itself (to look at keys).
    pub async fn query(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.proxy.addr.port().to_string()])
            .args(args)
            .output()
            .await
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `redis-cli -x`: `args`, then `last` (any bytes, read from stdin) as
    /// the last argument.
    pub async fn query_with(&self, args: &[&str], last: &[u8]) -> String {
        use tokio::io::AsyncWriteExt;
        let mut child = Command::new("redis-cli")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.proxy.addr.port().to_string(),
                "-x",
            ])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("redis-cli");
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(last).await.unwrap();
        drop(stdin);
        let out = child.wait_with_output().await.expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}
