//! The server value and its accept loop.
//!
//! [`Server`] is cheap to clone (an `Arc` over shared state). [`Server::serve`]
//! takes a bound listener and a shutdown future, mini-redis style, so the
//! caller owns the socket and the signal: that is what makes roomcast testable
//! on port 0 and embeddable in a host application.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::admission::PeerAddr;
use crate::config::Config;
use crate::error::Error;
use crate::metrics::Metrics;
use crate::script::ScriptHost;
use crate::sio::SocketIo;
use crate::state::State;

/// Bind `addr` with a listen backlog of `backlog` (`listen_backlog`), or the
/// kernel's `net.core.somaxconn` if that is lower (the kernel would cap it
/// silently); returns the listener and the backlog it asked for. Tokio's and
/// std's `bind` use 128, which a reconnect storm overflows.
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<(TcpListener, u32)> {
    let backlog = somaxconn().map_or(backlog, |max| backlog.min(max)).max(1);
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std does on Unix: a restart can bind while old connections linger
    // in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok((socket.listen(backlog)?, backlog))
}

/// Where the listening socket came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listening {
    /// Bound here.
    Bound {
        /// The backlog asked of the kernel (see [`bind`]).
        backlog: u32,
    },
    /// Inherited through socket activation (systemd's `LISTEN_FDS`, or
    /// `podman run --preserve-fds 1 -e LISTEN_FDS=1 -e LISTEN_PID=1`): the
    /// owner bound it and chose its backlog.
    Inherited,
}

/// The listener `serve` takes: the first socket passed by socket activation
/// if there is one (it must be a TCP listener), else `addr` bound with
/// `backlog` as [`bind`] does.
pub fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<(TcpListener, Listening)> {
    let context = |what: String| {
        move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{what}: {e}"))
    };
    let mut inherited = listenfd::ListenFd::from_env();
    if inherited.len() > 0 {
        let mut passed = || -> std::io::Result<TcpListener> {
            let std = inherited
                .take_tcp_listener(0)?
                .ok_or_else(|| std::io::Error::other("its first descriptor is gone"))?;
            std.set_nonblocking(true)?;
            TcpListener::from_std(std)
        };
        let listener = passed().map_err(context("the socket passed in LISTEN_FDS".into()))?;
        return Ok((listener, Listening::Inherited));
    }
    let (listener, backlog) = bind(addr, backlog).map_err(context(addr.to_string()))?;
    Ok((listener, Listening::Bound { backlog }))
}

/// The kernel's cap on listen backlogs, where it can be read.
fn somaxconn() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A roomcast server: routes, scripts, rooms and metrics.
#[derive(Clone)]
pub struct Server {
    state: Arc<State>,
    /// The socket.io endpoint, unless `socketio.enabled = false`.
    sio: Option<Arc<SocketIo>>,
}

impl Server {
    /// Build a server from a config: validates it and compiles every script.
    pub fn new(config: Config) -> Result<Server, Error> {
        let state = Arc::new(State::new(config)?);
        let sio = state
            .config
            .socketio
            .enabled
            .then(|| Arc::new(SocketIo::new(&state)));
        Ok(Server { state, sio })
    }

    /// The configuration in effect.
    pub fn config(&self) -> &Config {
        &self.state.config
    }

    /// The server's metrics (and their registry).
    pub fn metrics(&self) -> &Metrics {
        &self.state.metrics
    }

    /// Rooms with members on this node, with their member counts.
    pub fn rooms(&self) -> Vec<(String, usize)> {
        self.state.hub.rooms()
    }

    /// The script host (reload events, scripts in use).
    pub fn scripts(&self) -> &ScriptHost {
        &self.state.scripts
    }

    /// Answer one HTTP request: health, metrics, the index page, or a WebSocket
    /// upgrade on a route. A host hyper or axum application can call this from
    /// its own router; the request must come from a hyper server connection
    /// that has `with_upgrades()` for WebSocket routes to work.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        crate::http::handle(&self.state, self.sio.as_deref(), req).await
    }

    /// Re-read every script and swap in those that changed, as a save does
    /// when the directory is watched (the binary does this on SIGHUP).
    pub async fn reload_scripts(&self) {
        crate::script::reload(self.state.scripts.clone()).await;
    }

    /// Start watching the scripts directory for changes (if `scripts.watch` and
    /// the directory exists). `serve` calls this; embedders using only `handle`
    /// call it themselves.
    pub fn watch_scripts(&self) -> Result<(), Error> {
        if !self.state.config.scripts.watch {
            return Ok(());
        }
        crate::script::watch(
            self.state.scripts.clone(),
            self.state.config.scripts.reload_debounce,
            self.state.shutdown.clone(),
        )
    }

    /// Start the operator view's sampler (`/admin`, when an API key is
    /// set): once a second this node's figures, and on a cluster its report
    /// to the other nodes. `serve` calls this; embedders using only
    /// `handle` call it themselves, inside a Tokio runtime.
    pub fn start_operator_view(&self) {
        if let Some(board) = &self.state.board {
            board.start(&self.state);
        }
    }

    /// Accept connections on `listener` until `shutdown` resolves, then close
    /// every WebSocket with 1001 and wait for sessions (up to
    /// `shutdown.drain_timeout`).
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        self.watch_scripts()?;
        // A cluster node takes part before it serves (clients that connect
        // meanwhile wait in the listen backlog).
        self.state.broker.ready().get().await;
        if let Some(why) = self.state.broker.startup_error() {
            return Err(Error::Config(why));
        }
        self.start_operator_view();
        let connections = TaskTracker::new();
        // Ends idle keep-alive HTTP connections once the listener is closed.
        let stop_http = CancellationToken::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                res = listener.accept() => match res {
                    // While connections wait in the queue (a storm), each
                    // turn of the loop takes one at once: accept only waits
                    // when the queue is empty. (Taking up to 64 per turn
                    // measured no different.)
                    Ok((stream, peer)) => {
                        let server = self.clone();
                        let stop = stop_http.clone();
                        connections.spawn(async move { server.serve_connection(stream, peer, stop).await });
                    }
                    Err(e) => {
                        // Usually EMFILE/ENFILE: back off instead of spinning.
                        tracing::error!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                () = &mut shutdown => break,
            }
        }
        tracing::info!("shutting down: closing connections with 1001");
        self.shutdown();
        stop_http.cancel();
        connections.close();
        // While sessions drain the listener stays open: load balancers and
        // probes see `/readyz` answer 503 (not a refused connection) and new
        // upgrades are refused with 503. Each connection accepted now serves
        // one request and closes.
        let draining = CancellationToken::new();
        let accepting = async {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        let server = self.clone();
                        let stop = draining.clone();
                        connections.spawn(async move {
                            server
                                .serve_connection_with(stream, peer, stop, false)
                                .await
                        });
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        };
        let drained = tokio::time::timeout(self.state.config.shutdown.drain_timeout, async {
            tokio::select! {
                () = async {
                    connections.wait().await;
                    self.state.sessions.wait().await;
                } => {}
                () = accepting => {}
            }
        })
        .await;
        drop(listener);
        if drained.is_err() {
            tracing::warn!(
                open = self.state.metrics.connections.get(),
                "drain timeout passed with sessions still open"
            );
        }
        Ok(())
    }

    /// Begin shutdown: `/readyz` answers 503, new upgrades are refused, and
    /// every session is sent Close 1001. `serve` calls this when its shutdown
    /// future resolves; embedders call it from their own shutdown path.
    pub fn shutdown(&self) {
        self.state.drain();
        if let Some(sio) = &self.sio {
            sio.shutdown();
        }
    }

    /// Wait until every WebSocket session has ended (after [`Server::shutdown`]).
    pub async fn sessions_closed(&self) {
        self.state.sessions.wait().await
    }

    async fn serve_connection(&self, stream: TcpStream, peer: SocketAddr, stop: CancellationToken) {
        self.serve_connection_with(stream, peer, stop, true).await
    }

    /// Serve one HTTP connection; without `keep_alive`, one request only.
    async fn serve_connection_with(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        stop: CancellationToken,
        keep_alive: bool,
    ) {
        let _ = stream.set_nodelay(true);
        let server = self.clone();
        // Signalled per answered request, so a shutdown can tell a
        // connection still sending its first request from an idle
        // keep-alive one: once anything was answered, a permit is stored
        // and `notified()` is ready at once.
        let answered = Arc::new(tokio::sync::Notify::new());
        let answered_tx = answered.clone();
        let service = service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(PeerAddr(peer));
            let server = server.clone();
            let answered = answered_tx.clone();
            async move {
                let resp = server.handle(req).await;
                answered.notify_one();
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        // The header read timeout drops clients that never finish a request
        // head (slowloris), including idle keep-alive connections.
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.state.config.limits.handshake_timeout)
            .keep_alive(keep_alive)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(conn);
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    if e.is_timeout() {
                        self.state.metrics.handshake_timeouts.inc();
                        tracing::debug!(%peer, "no complete request head in time: connection dropped");
                    } else {
                        tracing::debug!(%peer, "http connection error: {e}");
                    }
                }
            }
            () = stop.cancelled() => {
                // Accepted just before shutdown, its first request may be on
                // its way (a readiness probe): answer it (503 from /readyz)
                // rather than close under it; then close.
                tokio::select! {
                    _ = conn.as_mut() => return,
                    _ = tokio::time::timeout(Duration::from_secs(1), answered.notified()) => {}
                }
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }
}
