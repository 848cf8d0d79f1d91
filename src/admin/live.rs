//! The viewers' WebSocket, `/admin/live`: the board's history once, then
//! its update each second. The key comes as a subprotocol
//! (`bearer.<base64url key>` beside `roomcast.admin`: a browser cannot set
//! headers on a WebSocket, the way Kubernetes' API server takes a bearer
//! token) or as `Authorization: Bearer <key>` from other clients.
//!
//! A viewer costs one task here and no queue: updates are a `watch`, so a
//! viewer that reads slowly skips to the newest, and one that does not read
//! for [`WRITE_TIMEOUT`] is closed.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use fastwebsockets::{Frame, OpCode, Payload};
use http_body_util::Full;
use hyper::header::{HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use hyper::{Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;

use super::Board;
use crate::http::{api_error, bearer, key_name, unauthorized};
use crate::state::State;

/// The subprotocol the page asks for (and the server answers with).
const SUBPROTOCOL: &str = "roomcast.admin";
/// How a subprotocol carries the key.
const BEARER: &str = "bearer.";
/// A write a viewer does not take within this long closes it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a viewer may send in one message (it has nothing to say).
const MAX_INPUT: usize = 4096;

/// Upgrade `req` to a viewer's WebSocket, if its key is right.
pub(crate) fn upgrade<B>(
    state: &Arc<State>,
    board: &Arc<Board>,
    req: &mut Request<B>,
) -> Response<Full<Bytes>> {
    let protocols: Vec<String> = req
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .collect();
    let from_protocol = protocols
        .iter()
        .find_map(|p| p.strip_prefix(BEARER))
        .and_then(|b| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(b)
                .ok()
        })
        .and_then(|k| String::from_utf8(k).ok());
    let Some(name) = from_protocol
        .or_else(|| bearer(req).map(str::to_string))
        .and_then(|k| key_name(&k, &state.config.api))
    else {
        return unauthorized(state);
    };
    let (response, fut) = match fastwebsockets::upgrade::upgrade(&mut *req) {
        Ok(ok) => ok,
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "bad_handshake",
                &format!("a WebSocket handshake is needed here ({e})"),
            )
        }
    };
    tracing::info!(key = name, "operator view opened");
    let mut response = response.map(|_| Full::new(Bytes::new()));
    if protocols.iter().any(|p| p == SUBPROTOCOL) {
        response.headers_mut().insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
    }
    state
        .sessions
        .spawn(serve(board.clone(), fut, state.shutdown.clone()));
    response
}

async fn serve(
    board: Arc<Board>,
    fut: fastwebsockets::upgrade::UpgradeFut,
    stop: CancellationToken,
) {
    let Ok(mut ws) = fut.await else {
        return;
    };
    ws.set_auto_close(false);
    ws.set_auto_pong(false);
    ws.set_max_message_size(MAX_INPUT);
    let (_viewer, mut updates) = board.watch();
    let (mut rx, mut tx) = ws.split(tokio::io::split);
    let (closed, mut heard_close) = tokio::sync::oneshot::channel::<()>();
    // The viewer says nothing but Close: read until it does (or goes).
    let reader = tokio::spawn(async move {
        loop {
            let frame = rx
                .read_frame(&mut |_| async { Ok::<(), std::io::Error>(()) })
                .await;
            match frame {
                Ok(f) if f.opcode == OpCode::Close => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = closed.send(());
    });
    let mut open = send(&mut tx, text(board.encode_history().to_string())).await;
    open = open && send(&mut tx, text(board.encode_update().to_string())).await;
    updates.mark_unchanged();
    let mut close = None;
    while open {
        tokio::select! {
            biased;
            _ = stop.cancelled() => {
                close = Some((1001, "server shutting down"));
                break;
            }
            _ = &mut heard_close => {
                close = Some((1000, ""));
                break;
            }
            changed = updates.changed() => {
                if changed.is_err() {
                    break;
                }
                let update = updates.borrow_and_update().clone();
                open = send(&mut tx, text(update.to_string())).await;
            }
        }
    }
    if let Some((code, reason)) = close {
        send(&mut tx, Frame::close(code, reason.as_bytes())).await;
    }
    reader.abort();
}

fn text(s: String) -> Frame<'static> {
    Frame::text(Payload::Owned(s.into_bytes()))
}

/// Write `frame`; false if the viewer is gone or did not take it in time.
async fn send<S: tokio::io::AsyncWrite + Unpin>(
    tx: &mut fastwebsockets::WebSocketWrite<S>,
    frame: Frame<'_>,
) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, tx.write_frame(frame)).await,
        Ok(Ok(()))
    )
}
