//! A real redis-server for the cluster tests (Debian's `redis-server`;
//! tests/run.sh installs it), reached through a proxy that holds one
//! loopback port for the whole test, so Redis can be killed and started
//! again (on a fresh port of its own) while the nodes keep their URL.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// One redis-server process.
pub struct Redis {
    pub addr: SocketAddr,
    child: Child,
}

impl Redis {
    /// Start redis-server on a free loopback port: a port just released by
    /// a bound socket, and another one if something else takes it first.
    pub async fn start() -> Redis {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("redis-server (Debian package redis-server; tests/run.sh installs it)");
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let ready = tokio::time::timeout(Duration::from_secs(20), async {
                let mut log = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.contains("Ready to accept connections") {
                        return Ok(());
                    }
                    log.push_str(&line);
                    log.push('\n');
                }
                Err(log)
            })
            .await
            .expect("redis-server ready in time");
            match ready {
                Ok(()) => {
                    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                    return Redis {
                        addr: SocketAddr::from(([127, 0, 0, 1], port)),
                        child,
                    };
                }
                Err(log) if log.contains("Address already in use") => continue,
                Err(log) => panic!("redis-server exited before it was ready:\n{log}"),
            }
        }
        panic!("no free port for redis-server after 5 tries");
    }

    /// SIGKILL it and wait until it is gone.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}

/// A TCP proxy on a port of its own, forwarding to whichever Redis is current.
pub struct Proxy {
    pub addr: SocketAddr,
    backend: Arc<Mutex<Option<SocketAddr>>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn new(backend: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let backend = Arc::new(Mutex::new(Some(backend)));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (b, c) = (backend.clone(), conns.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let target = *b.lock().unwrap();
                let conn = tokio::spawn(async move {
                    let Some(target) = target else { return };
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                c.lock().unwrap().push(conn);
            }
        });
        Proxy {
            addr,
            backend,
            conns,
            task,
        }
    }

    /// `redis://` URL of the proxy.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Forward to `backend` from now on (`None`: refuse, as a dead Redis
    /// would), cutting every connection made so far.
    pub fn point_to(&self, backend: Option<SocketAddr>) {
        *self.backend.lock().unwrap() = backend;
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
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
}
