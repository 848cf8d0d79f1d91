//! Start a real redis-server (Debian's `redis-server`; tests/run.sh
//! installs it) on a free loopback port, without persistence, stopped when
//! dropped. Shared by the broker contract suite (`src/broker/contract.rs`)
//! and the cluster tests (`tests/common/redis.rs`): plain std, no runtime.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// One redis-server process; SIGKILLed and reaped when dropped.
pub struct RedisServer {
    pub port: u16,
    child: Child,
}

impl RedisServer {
    /// On a port just released by a bound socket, and another one if
    /// something else takes it first. Returns once it accepts connections.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// The same with more arguments; a `{port}` in them is the port (for
    /// `--tls-port {port} --port 0`: a server reached over TLS only).
    pub fn start_with(extra: &[String]) -> RedisServer {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let extra: Vec<String> = extra
                .iter()
                .map(|a| a.replace("{port}", &port.to_string()))
                .collect();
            let tls = extra.iter().any(|a| a == "--tls-port");
            let plain_port = if tls {
                "0".to_string()
            } else {
                port.to_string()
            };
            let mut child = Command::new("redis-server")
                .args(["--port", &plain_port, "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                .args(&extra)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server (Debian package redis-server; tests/run.sh installs it)");
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let mut log = String::new();
            let ready = lines.by_ref().map_while(Result::ok).any(|line| {
                log.push_str(&line);
                log.push('\n');
                line.contains("Ready to accept connections")
            });
            if ready {
                // Keep reading its log, so it never blocks on a full pipe.
                std::thread::spawn(move || lines.for_each(drop));
                return RedisServer { port, child };
            }
            let _ = child.wait();
            assert!(
                log.contains("Address already in use"),
                "redis-server exited before it was ready:\n{log}"
            );
        }
        panic!("no free port for redis-server after 5 tries");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
