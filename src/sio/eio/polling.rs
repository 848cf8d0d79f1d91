//! Engine.IO's long-polling: the handshake, polls (GETs that wait for
//! packets) and POSTs (the client's packets, answered once the layer above
//! has caught up).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

use super::payload::{self, Packet, Protocol};
use super::socket::{self, Reason, Socket, Transport};
use super::{error, Engine, Handler};
use crate::metrics::SocketIoError;

fn text_response(body: Bytes, binary: bool) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    // Exactly this type for binary: socket.io-client 2 reads the body as
    // bytes only when it sees it.
    let kind = if binary {
        "application/octet-stream"
    } else {
        "text/plain; charset=UTF-8"
    };
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    resp
}

impl<H: Handler> Engine<H> {
    /// A polling handshake: the open packet, nothing more until it is used.
    pub(super) fn handshake<B>(
        &self,
        protocol: Protocol,
        req: &Request<B>,
        binary: bool,
    ) -> Response<Full<Bytes>> {
        let socket = self.create(protocol, Transport::Polling, binary, req);
        let open = self.open_packet(&socket.id, protocol, true);
        let body = match protocol {
            Protocol::V4 => open,
            Protocol::V3 => format!("{}:{open}", open.encode_utf16().count()),
        };
        text_response(Bytes::from(body), false)
    }

    /// A long-poll: whatever is queued, or the next packets to come.
    pub(super) async fn poll(
        self: &Arc<Self>,
        socket: Arc<Socket<H::Data>>,
    ) -> Response<Full<Bytes>> {
        match socket.transport() {
            Transport::Polling => {}
            Transport::Upgrading => return self.answer(&socket, &[Packet::Noop]),
            Transport::WebSocket => return error(StatusCode::BAD_REQUEST, 3, "Bad request"),
        }
        if !socket.poll_begins() {
            self.close(&socket, Reason::ConcurrentPolls);
            return error(StatusCode::BAD_REQUEST, 3, "Bad request");
        }
        // However this ends (answered, or the request dropped), the client
        // is away from then on.
        struct Away<'a, D>(&'a Socket<D>);
        impl<D> Drop for Away<'_, D> {
            fn drop(&mut self) {
                self.0.poll_ends();
            }
        }
        let _away = Away(&socket);
        let mut packets = Vec::new();
        loop {
            if let Some(reason) = socket.reason() {
                // Closed: everything it was sent, the close packet last,
                // and it is forgotten.
                socket.take(usize::MAX, &mut packets);
                if packets.last() != Some(&Packet::Close) {
                    packets.push(Packet::Close);
                }
                self.finish(&socket, reason);
                return self.answer(&socket, &packets);
            }
            socket.take(self.config.max_payload, &mut packets);
            if !packets.is_empty() {
                return self.answer(&socket, &packets);
            }
            if socket.transport() != Transport::Polling {
                return self.answer(&socket, &[Packet::Noop]);
            }
            socket.wake.notified().await;
        }
    }

    fn answer(&self, socket: &Socket<H::Data>, packets: &[Packet]) -> Response<Full<Bytes>> {
        let p = payload::encode(socket.protocol, packets, socket.binary);
        text_response(p.body, p.binary)
    }

    /// A POST: the client's packets, handed over in order.
    pub(super) async fn post<B>(
        self: &Arc<Self>,
        socket: Arc<Socket<H::Data>>,
        req: Request<B>,
    ) -> Response<Full<Bytes>>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if socket.transport() == Transport::WebSocket {
            return error(StatusCode::BAD_REQUEST, 3, "Bad request");
        }
        let binary = req
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/octet-stream"));
        let too_large = || {
            self.metrics.socketio_error(SocketIoError::TooLarge);
            let mut r = error(StatusCode::PAYLOAD_TOO_LARGE, 3, "Payload too large");
            r.headers_mut()
                .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
            r
        };
        let declared = req
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.config.max_payload as u64) {
            return too_large();
        }
        let body = match Limited::new(req.into_body(), self.config.max_payload)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                return too_large()
            }
            Err(_) => return error(StatusCode::BAD_REQUEST, 3, "Bad request"),
        };
        let packets = match payload::decode(socket.protocol, &body, binary) {
            Ok(p) => p,
            Err(why) => {
                tracing::debug!(
                    sid = socket::sid_str(&socket.id),
                    "bad polling payload: {}",
                    why.0
                );
                self.metrics.socketio_error(SocketIoError::BadPacket);
                self.close(&socket, Reason::BadPacket);
                return error(StatusCode::BAD_REQUEST, 3, "Bad request");
            }
        };
        for p in packets {
            if socket.is_closed() {
                break;
            }
            self.incoming(&socket, p);
        }
        // Backpressure: answered once the layer above has caught up.
        socket.resumed().await;
        text_response(Bytes::from_static(b"ok"), false)
    }
}
