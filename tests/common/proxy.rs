//! A TCP proxy on a loopback port of its own, forwarding to whichever
//! backend is current: what lets a test cut every connection (a network
//! drop) or move its clients to another server behind the same address.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP proxy on a port of its own, forwarding to whichever backend is current.
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

    /// `redis://` URL of the proxy (for a Redis behind it).
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Cut every connection made so far (new ones still go through).
    pub fn cut(&self) {
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// Refuse new connections from now on, leaving those made so far.
    pub fn refuse_new(&self) {
        *self.backend.lock().unwrap() = None;
    }

    /// Forward to `backend` from now on (`None`: refuse, as a dead Redis
    /// would), cutting every connection made so far.
    pub fn point_to(&self, backend: Option<SocketAddr>) {
        *self.backend.lock().unwrap() = backend;
        self.cut();
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
