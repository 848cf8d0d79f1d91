//! Mount roomcast inside a host hyper application that also serves its own routes.
//!
//! The host answers `/` and `/hello` itself and hands everything under `/rt/`
//! to roomcast with the prefix stripped, so `ws://127.0.0.1:8080/rt/chat` is
//! roomcast's chat and `http://127.0.0.1:8080/rt/metrics` its metrics.
//!
//! ```text
//! cargo run --example embed
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Where the host mounts roomcast.
pub const PREFIX: &str = "/rt";

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), roomcast::Error> {
    let roomcast = roomcast::Server::new(roomcast::Config::default())?;
    let listener = TcpListener::bind("127.0.0.1:8080").await?;
    println!("host app on http://127.0.0.1:8080, roomcast under {PREFIX}/");
    run(listener, roomcast, roomcast::shutdown::signal()).await;
    Ok(())
}

/// The host's accept loop: its own routes plus roomcast's handler.
pub async fn run(
    listener: TcpListener,
    roomcast: roomcast::Server,
    shutdown: impl Future<Output = ()>,
) {
    if let Err(e) = roomcast.watch_scripts() {
        eprintln!("script hot reload disabled: {e}");
    }
    // The operator view's sampler (a no-op unless an API key is set).
    roomcast.start_operator_view();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let roomcast = roomcast.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| route(req, roomcast.clone()));
                    // `with_upgrades` is what lets roomcast take the socket over.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    // Close every WebSocket with 1001 and give sessions a moment to finish.
    roomcast.shutdown();
    let _ = tokio::time::timeout(Duration::from_secs(10), roomcast.sessions_closed()).await;
}

async fn route(
    mut req: Request<hyper::body::Incoming>,
    roomcast: roomcast::Server,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    Ok(match path.as_str() {
        "/" => Response::new(Full::new(Bytes::from_static(
            b"host app: try /hello, or ws://.../rt/chat\n",
        ))),
        "/hello" => Response::new(Full::new(Bytes::from_static(b"hello from the host\n"))),
        p if p == PREFIX || p.starts_with(&format!("{PREFIX}/")) => {
            let rest = match &p[PREFIX.len()..] {
                "" => "/".to_string(),
                r => r.to_string(),
            };
            let rest = match req.uri().query() {
                Some(q) => format!("{rest}?{q}"),
                None => rest,
            };
            *req.uri_mut() = rest.parse::<Uri>().expect("a path is a valid URI");
            roomcast.handle(req).await
        }
        _ => {
            let mut r = Response::new(Full::new(Bytes::from_static(b"not found\n")));
            *r.status_mut() = hyper::StatusCode::NOT_FOUND;
            r
        }
    })
}
