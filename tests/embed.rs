//! roomcast mounted in a host hyper app (the `embed` example, compiled in here).

mod common;

#[path = "../examples/embed.rs"]
mod embed;

use common::{json, Ws};

/// The host serves its own routes and roomcast's chat under its prefix.
#[tokio::test]
async fn host_app_serves_its_routes_and_roomcast() {
    let roomcast = roomcast::Server::new(common::test_config()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let host = tokio::spawn(embed::run(listener, roomcast.clone(), async {
        let _ = stopped.await;
    }));

    let hello = common::http_get(addr, "/hello").await;
    assert_eq!(
        (hello.status, hello.body.as_str()),
        (200, "hello from the host\n")
    );

    let mut a = Ws::connect(&format!("ws://{addr}/rt/chat/room1")).await;
    assert_eq!(a.recv_json().await, json("enter", "user1 comes in"));
    a.send_text("embedded").await;
    assert_eq!(a.recv_json().await, json("message", "user1:embedded"));

    let metrics = common::http_get(addr, "/rt/metrics").await;
    assert!(
        metrics.body.contains("roomcast_connections 1"),
        "{}",
        metrics.body
    );

    let _ = stop.send(());
    assert_eq!(a.expect_close().await.0, 1001);
    host.await.unwrap();
}

/// A host whose connections are not plain TCP streams (TLS, say) still works:
/// the upgraded stream is bridged to the session.
#[tokio::test]
async fn host_with_a_wrapped_stream_is_bridged() {
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    /// A stream type roomcast cannot downcast to a TcpStream.
    struct Wrapped(tokio::net::TcpStream);
    impl AsyncRead for Wrapped {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }
    impl AsyncWrite for Wrapped {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Pin::new(&mut self.0).poll_write(cx, buf)
        }
        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.0).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.0).poll_shutdown(cx)
        }
    }

    let roomcast = roomcast::Server::new(common::test_config()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = roomcast.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let server = server.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let server = server.clone();
                    async move { Ok::<_, std::convert::Infallible>(server.handle(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(Wrapped(stream)), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    let mut ws = Ws::connect(&format!("ws://{addr}/shout")).await;
    for msg in ["bridged", "twice"] {
        ws.send_text(msg).await;
        assert_eq!(ws.recv_text().await, format!("{}!!!", msg.to_uppercase()));
    }
    ws.close().await;
    assert_eq!(roomcast.metrics().connections_closed.get(), 1);
}
