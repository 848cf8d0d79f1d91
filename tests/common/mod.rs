//! Shared test harness: a real roomcast server on 127.0.0.1:0 and real clients
//! (tokio-tungstenite, plus a raw-socket client for frames a polite client
//! would never send).
#![allow(dead_code)]

pub mod eio;
pub mod proxy;
pub mod redis;
pub mod redis_cluster;
pub mod redis_server;
pub mod sio;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use roomcast::{Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single expected event may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// A wall-clock bound for this machine: `d` times `TEST_TIME_SCALE` (a
/// number, 1 unless set), for a slow or loaded machine. Bounds on time use
/// this, so one setting loosens them all; none is the test's point.
pub fn scaled(d: Duration) -> Duration {
    let scale = std::env::var("TEST_TIME_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s >= 1.0)
        .unwrap_or(1.0);
    d.mul_f64(scale)
}

/// The repository's `scripts/` directory.
pub fn repo_scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")
}

/// Defaults, with the repository's scripts and no watcher.
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.scripts.dir = repo_scripts();
    c.scripts.watch = false;
    c.limits.close_timeout = Duration::from_secs(1);
    c
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub server: Server,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), roomcast::Error>>,
}

impl TestServer {
    pub async fn start(config: Config) -> TestServer {
        let server = Server::new(config).expect("server builds");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let s = server.clone();
        let task = tokio::spawn(async move {
            s.serve(listener, async {
                let _ = stopped.await;
            })
            .await
        });
        TestServer {
            addr,
            server,
            stop: Some(stop),
            task,
        }
    }

    pub async fn start_default() -> TestServer {
        TestServer::start(test_config()).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    pub async fn connect(&self, path: &str) -> Ws {
        Ws::connect(&self.url(path)).await
    }

    /// Trigger shutdown and wait for `serve` to return.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(15), &mut self.task)
            .await
            .expect("serve returns after shutdown")
            .unwrap()
            .unwrap();
    }

    pub async fn get(&self, path: &str) -> HttpResponse {
        http_get(self.addr, path).await
    }

    /// Value of one sample in `/metrics`, e.g. `roomcast_connections` or
    /// `roomcast_script_errors_total{hook="message"}`. A sample that is not
    /// exported fails the test: a renamed or missing metric is never a zero.
    pub async fn metric(&self, sample: &str) -> f64 {
        let body = self.get("/metrics").await.body;
        metric_value(&body, sample)
    }
}

/// The value of `sample` in a Prometheus exposition; panics if it is absent.
pub fn metric_value(exposition: &str, sample: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == sample).then(|| value.parse::<f64>().unwrap())
        })
        .unwrap_or_else(|| panic!("metric {sample} is not exported"))
}

pub struct HttpResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// A plain HTTP/1.1 GET over a fresh socket.
pub async fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    http_raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

pub async fn http_raw(addr: SocketAddr, request: &str) -> HttpResponse {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    // Read the head, then exactly Content-Length bytes (keep-alive safe).
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let read = async {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before the response head");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let len = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().unwrap())
            })
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed before the body ended");
            buf.extend_from_slice(&chunk[..n]);
        }
        (
            head,
            String::from_utf8_lossy(&buf[head_end..head_end + len]).to_string(),
        )
    };
    let (head, body) = tokio::time::timeout(WAIT, read)
        .await
        .expect("response in time");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    HttpResponse {
        status,
        head: head.trim_end().to_string(),
        body,
    }
}

/// A tokio-tungstenite client with test helpers.
pub struct Ws {
    pub inner: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn connect(url: &str) -> Ws {
        let (inner, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        assert_eq!(resp.status(), 101);
        Ws { inner }
    }

    pub async fn send_text(&mut self, s: &str) {
        self.inner.send(Message::text(s)).await.unwrap();
    }

    pub async fn send_binary(&mut self, b: &[u8]) {
        self.inner.send(Message::binary(b.to_vec())).await.unwrap();
    }

    /// The next data message (pings/pongs skipped); panics on close or timeout.
    pub async fn recv(&mut self) -> Message {
        loop {
            let msg = tokio::time::timeout(WAIT, self.inner.next())
                .await
                .expect("a message in time")
                .expect("stream open")
                .expect("no protocol error");
            match msg {
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Close(c) => panic!("unexpected close: {c:?}"),
                m => return m,
            }
        }
    }

    pub async fn recv_text(&mut self) -> String {
        match self.recv().await {
            Message::Text(t) => t.to_string(),
            other => panic!("expected text, got {other:?}"),
        }
    }

    pub async fn recv_json(&mut self) -> serde_json::Value {
        let t = self.recv_text().await;
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON: {t:?}: {e}"))
    }

    /// Wait for the server's Close frame; returns (code, reason).
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            let msg = tokio::time::timeout(WAIT, self.inner.next())
                .await
                .expect("a close in time");
            match msg {
                Some(Ok(Message::Close(Some(f)))) => return (f.code.into(), f.reason.to_string()),
                Some(Ok(Message::Close(None))) => return (1005, String::new()),
                Some(Ok(_)) => continue,
                other => panic!("expected a Close frame, got {other:?}"),
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.inner.close(None).await;
        // Drain until the server's close echo and EOF.
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, self.inner.next()).await {}
    }
}

pub fn json(type_: &str, data: &str) -> serde_json::Value {
    serde_json::json!({ "type": type_, "data": data })
}

/// A raw WebSocket client for malformed input: hand-written handshake and frames.
pub struct RawWs {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// A WebSocket upgrade request for `path`, offering `protocol` if given.
pub fn upgrade_request(addr: SocketAddr, path: &str, protocol: Option<&str>) -> String {
    let offer = protocol
        .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
        .unwrap_or_default();
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{offer}\r\n"
    )
}

/// Upgrade by hand on a plain TCP stream (for tests that hold thousands of
/// connections): the stream right after its 101, nothing of what follows read.
pub async fn raw_upgrade(addr: SocketAddr, path: &str, protocol: Option<&str>) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(upgrade_request(addr, path, protocol).as_bytes())
        .await
        .unwrap();
    // The head byte by byte: what follows it is frames.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

impl RawWs {
    pub async fn connect(addr: SocketAddr, path: &str) -> RawWs {
        RawWs::handshake(TcpStream::connect(addr).await.unwrap(), addr, path).await
    }

    /// With a receive buffer of `rcvbuf` bytes: the kernel holds little of
    /// what the server writes while this client does not read.
    pub async fn connect_with_rcvbuf(addr: SocketAddr, path: &str, rcvbuf: u32) -> RawWs {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(rcvbuf).unwrap();
        RawWs::handshake(socket.connect(addr).await.unwrap(), addr, path).await
    }

    async fn handshake(stream: TcpStream, addr: SocketAddr, path: &str) -> RawWs {
        RawWs::handshake_with(stream, addr, path, "").await.0
    }

    /// Connect with `headers` (`Name: value\r\n` lines) in the upgrade
    /// request; also the 101's head.
    pub async fn connect_with_headers(
        addr: SocketAddr,
        path: &str,
        headers: &str,
    ) -> (RawWs, String) {
        let stream = TcpStream::connect(addr).await.unwrap();
        RawWs::handshake_with(stream, addr, path, headers).await
    }

    async fn handshake_with(
        mut stream: TcpStream,
        addr: SocketAddr,
        path: &str,
        headers: &str,
    ) -> (RawWs, String) {
        let req = upgrade_request(addr, path, None);
        let req = format!("{}{headers}\r\n", req.strip_suffix("\r\n").unwrap());
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        let end = loop {
            let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
                .await
                .expect("handshake in time")
                .unwrap();
            assert!(n > 0, "closed during handshake");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        let ws = RawWs {
            stream,
            buf: buf[end..].to_vec(),
        };
        (ws, head)
    }

    /// Read one server frame with its first byte whole (RSV bits too):
    /// (first byte, payload).
    pub async fn recv_frame_raw(&mut self) -> (u8, Vec<u8>) {
        loop {
            if let Some(((_, _, payload), used)) = parse_server_frame(&self.buf) {
                let first = self.buf[0];
                self.buf.drain(..used);
                return (first, payload);
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(WAIT, self.stream.read(&mut chunk))
                .await
                .expect("a frame in time")
                .unwrap();
            assert!(n > 0, "EOF before a complete frame");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Send one frame. `masked = false` sends an (illegal) unmasked client frame.
    pub async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8], masked: bool) {
        let frame = encode_client_frame(fin, opcode, payload, masked);
        self.stream.write_all(&frame).await.unwrap();
    }

    /// Read one server frame: (fin, opcode, payload).
    pub async fn recv_frame(&mut self) -> RawFrame {
        let (first, payload) = self.recv_frame_raw().await;
        (first & 0x80 != 0, first & 0x0f, payload)
    }

    /// Read frames until a Close; returns its code.
    pub async fn expect_close(&mut self) -> u16 {
        loop {
            let (_, op, payload) = self.recv_frame().await;
            if op == 0x8 {
                assert!(payload.len() >= 2, "close without code");
                return u16::from_be_bytes([payload[0], payload[1]]);
            }
        }
    }
}

pub fn encode_client_frame(fin: bool, opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut f = vec![(if fin { 0x80 } else { 0 }) | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        f.push(mask_bit | len as u8);
    } else if len <= 65535 {
        f.push(mask_bit | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        f.push(mask_bit | 127);
        f.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if masked {
        let key = [0x12, 0x34, 0x56, 0x78];
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    } else {
        f.extend_from_slice(payload);
    }
    f
}

/// A parsed server frame: (fin, opcode, payload).
pub type RawFrame = (bool, u8, Vec<u8>);

fn parse_server_frame(buf: &[u8]) -> Option<(RawFrame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    assert_eq!(buf[1] & 0x80, 0, "server frames must not be masked");
    let (len, off) = match buf[1] & 0x7f {
        126 => {
            if buf.len() < 4 {
                return None;
            }
            (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4)
        }
        127 => {
            if buf.len() < 10 {
                return None;
            }
            let mut n = [0u8; 8];
            n.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(n) as usize, 10)
        }
        n => (n as usize, 2),
    };
    if buf.len() < off + len {
        return None;
    }
    Some((
        (
            buf[0] & 0x80 != 0,
            buf[0] & 0x0f,
            buf[off..off + len].to_vec(),
        ),
        off + len,
    ))
}

/// Poll the server at `addr` (in this process or not) until its metric
/// `sample` is `expected`, for at most `within`; returns the last value
/// seen (a missing sample fails the test). Metrics have no change
/// notification, so this polls.
pub async fn wait_for_metric(
    addr: SocketAddr,
    sample: &str,
    expected: f64,
    within: Duration,
) -> f64 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let v = metric_value(&http_get(addr, "/metrics").await.body, sample);
        if v == expected || tokio::time::Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl TestServer {
    /// Wait (up to [`WAIT`]) for a metric sample to reach `expected`; returns the
    /// last value seen (a missing sample fails the test). Metrics have no
    /// change notification, so this polls.
    pub async fn wait_metric(&self, sample: &str, expected: f64) -> f64 {
        wait_for_metric(self.addr, sample, expected, WAIT).await
    }
}

/// A scripts directory in a temp dir, seeded with the repository's route
/// scripts (the files of `scripts/`, not its subdirectories).
pub fn temp_scripts() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo_scripts()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    dir
}

/// Config serving `dir`, with one extra route `name` → `name.rhai`.
pub fn config_with_route(dir: &Path, name: &str) -> Config {
    let mut c = test_config();
    c.scripts.dir = dir.to_path_buf();
    c.routes.push(roomcast::config::RouteConfig::script(
        name,
        &format!("{name}.rhai"),
    ));
    c
}

/// Try an upgrade that should be refused: returns (status, body).
pub async fn refused(
    req: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> (u16, String) {
    let (status, _, body) = refused_with_headers(req).await;
    (status, body)
}

/// Like [`refused`], with the response's headers too.
pub async fn refused_with_headers(
    req: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> (u16, tokio_tungstenite::tungstenite::http::HeaderMap, String) {
    match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .expect("an answer in time")
    {
        Ok((_, resp)) => panic!("expected a refusal, got {}", resp.status()),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => (
            resp.status().as_u16(),
            resp.headers().clone(),
            String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
    }
}

/// A loopback address nothing listens on, for as long as the value lives: the
/// port is bound (so no other test can take it) but not listening, so a
/// connection to it is refused at once.
pub struct DeadPort {
    _socket: tokio::net::TcpSocket,
    pub addr: SocketAddr,
}

impl DeadPort {
    pub fn new() -> DeadPort {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = socket.local_addr().unwrap();
        DeadPort {
            _socket: socket,
            addr,
        }
    }
}

/// A client request for `url` with extra headers.
pub fn request(
    url: &str,
    headers: &[(&str, &str)],
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    req
}

impl Ws {
    /// Connect with a prepared request (headers, query).
    pub async fn connect_with(
        req: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> Ws {
        let (inner, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .expect("connect in time")
            .unwrap_or_else(|e| panic!("connect: {e}"));
        assert_eq!(resp.status(), 101);
        Ws { inner }
    }
}

/// Start the `roomcast` binary on 127.0.0.1:0 with extra flags and environment;
/// returns the child, its address (from the startup line) and that line.
pub async fn spawn_binary(
    args: &[&str],
    envs: &[(&str, &str)],
    cwd: &Path,
) -> (tokio::process::Child, String, String) {
    let (child, addr, line, _) = spawn_binary_logs(args, envs, cwd).await;
    (child, addr, line)
}

/// `spawn_binary`, plus the log lines the server writes after its startup line.
pub async fn spawn_binary_logs(
    args: &[&str],
    envs: &[(&str, &str)],
    cwd: &Path,
) -> (
    tokio::process::Child,
    String,
    String,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    use tokio::io::AsyncBufReadExt;
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_roomcast"));
    cmd.args(["--listen", "127.0.0.1:0"])
        .args(args)
        .current_dir(cwd)
        .env_remove("ROOMCAST_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("listening on http://") {
                return line;
            }
        }
        panic!("server exited before listening");
    })
    .await
    .expect("startup line in time");
    let addr = line
        .split("listening on http://")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    // Keep draining stderr so the child never blocks on a full pipe (whether
    // or not anyone listens to the lines).
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(line);
        }
    });
    (child, addr, line, rx)
}

/// A process's resident set and its peak, in bytes, from /proc/PID/status.
pub fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| {
                v.trim()
                    .trim_end_matches(" kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap()
                    * 1024
            })
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A roomcast.v1 client: JSON commands out, JSON events in.
pub struct V1 {
    pub ws: Ws,
}

impl V1 {
    /// Connect to `path` offering the roomcast.v1 subprotocol (plus headers).
    pub async fn connect(srv: &TestServer, path: &str, headers: &[(&str, &str)]) -> V1 {
        let mut all = vec![("sec-websocket-protocol", "roomcast.v1")];
        all.extend_from_slice(headers);
        let req = request(&srv.url(path), &all);
        let (inner, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
            .await
            .expect("connect in time")
            .unwrap_or_else(|e| panic!("connect: {e}"));
        assert_eq!(
            resp.headers()
                .get("sec-websocket-protocol")
                .map(|v| v.to_str().unwrap()),
            Some("roomcast.v1"),
            "subprotocol negotiated"
        );
        V1 { ws: Ws { inner } }
    }

    pub async fn send(&mut self, cmd: serde_json::Value) {
        self.ws.send_text(&cmd.to_string()).await;
    }

    /// The next event.
    pub async fn recv(&mut self) -> serde_json::Value {
        self.ws.recv_json().await
    }

    /// The next event, which must be of `type_`.
    pub async fn expect(&mut self, type_: &str) -> serde_json::Value {
        let ev = self.recv().await;
        assert_eq!(ev["type"], type_, "expected a {type_} event, got {ev}");
        ev
    }

    /// Join `room` and wait for `joined` (presence events may come first or after).
    pub async fn join(&mut self, room: &str) -> serde_json::Value {
        self.send(serde_json::json!({"type": "join", "room": room}))
            .await;
        loop {
            let ev = self.recv().await;
            if ev["type"] == "joined" {
                return ev;
            }
            assert!(ev["type"] == "join", "unexpected event before joined: {ev}");
        }
    }

    /// Skip events until one of `type_` arrives.
    pub async fn until(&mut self, type_: &str) -> serde_json::Value {
        loop {
            let ev = self.recv().await;
            if ev["type"] == type_ {
                return ev;
            }
        }
    }
}

/// A call to the HTTP API (`/api/...`) with the key `key`: status and JSON body.
pub async fn api_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    let r = http_raw(
        addr,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    let value =
        serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.body));
    (r.status, value)
}

/// Raise this process's open-file limit to its hard limit (the server it
/// spawns inherits it); fail clearly if that is too low for `need`.
pub fn raise_nofile(need: u64) {
    let pid = std::process::id().to_string();
    let out = std::process::Command::new("prlimit")
        .args(["--pid", &pid, "--nofile", "--noheadings", "--output=HARD"])
        .output()
        .expect("prlimit (util-linux) runs");
    let hard: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(
        hard >= need,
        "open-file hard limit {hard} is below the {need} this test needs"
    );
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={hard}:{hard}")])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Upgrade one raw connection for each `(path, protocol)`, 200 at a time,
/// in that order (a test holding thousands of clients).
pub async fn raw_upgrades(
    addr: SocketAddr,
    targets: impl IntoIterator<Item = (String, Option<&'static str>)>,
) -> Vec<TcpStream> {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(200));
    let mut opening = Vec::new();
    for (path, protocol) in targets {
        let gate = gate.clone();
        opening.push(tokio::spawn(async move {
            let _p = gate.acquire().await.unwrap();
            raw_upgrade(addr, &path, protocol).await
        }));
    }
    let mut streams = Vec::with_capacity(opening.len());
    for o in opening {
        streams.push(o.await.unwrap());
    }
    streams
}
