//! The script API: the `Conn` and `Request` types and their methods, as
//! registered on the engine (docs/scripting.md lists them).

use rhai::{Array, Dynamic, Engine, EvalAltResult, ImmutableString, Map};

use super::action::{to_payload, Action, RhaiResult};
use super::conn::{valid_nick, Conn};
use super::request::ScriptRequest;
use crate::close;
use crate::ids::ConnId;

/// Register the `Conn` and `Request` types and their methods on `engine`.
pub fn register(engine: &mut Engine) {
    // Wall-clock milliseconds since the Unix epoch (slow modes, timestamps).
    engine.register_fn("now_ms", || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    });
    engine
        .register_type_with_name::<ScriptRequest>("Request")
        .register_get("path", |r: &mut ScriptRequest| r.0.path.clone())
        .register_get("route", |r: &mut ScriptRequest| r.0.route.clone())
        .register_get("room", |r: &mut ScriptRequest| r.0.room.clone())
        .register_get("query", |r: &mut ScriptRequest| r.0.info.query())
        .register_get("headers", |r: &mut ScriptRequest| r.0.info.headers())
        .register_get("remote_addr", |r: &mut ScriptRequest| {
            r.0.info.remote_addr()
        })
        .register_get("user", |r: &mut ScriptRequest| r.0.user.clone())
        .register_get("claims", |r: &mut ScriptRequest| r.0.claims.clone())
        .register_fn(
            "reject",
            |r: &mut ScriptRequest, reason: ImmutableString| r.reject(403, &reason),
        )
        .register_fn(
            "reject",
            |r: &mut ScriptRequest, status: i64, reason: ImmutableString| r.reject(status, &reason),
        );
    engine
        .register_type_with_name::<Conn>("Conn")
        .register_get("user", |c: &mut Conn| c.0.user.clone())
        .register_get("claims", |c: &mut Conn| c.state().claims.clone())
        .register_get("id", |c: &mut Conn| c.0.id as i64)
        .register_get("seq", |c: &mut Conn| c.0.seq as i64)
        .register_get("route", |c: &mut Conn| c.0.route.clone())
        .register_get("room", |c: &mut Conn| c.state().room.clone())
        .register_get("rooms", |c: &mut Conn| -> Array {
            c.state().rooms.iter().cloned().map(Dynamic::from).collect()
        })
        .register_get("remote_addr", |c: &mut Conn| c.0.request.remote_addr())
        .register_get("query", |c: &mut Conn| c.0.request.query())
        .register_get("headers", |c: &mut Conn| c.0.request.headers())
        .register_get_set(
            "state",
            |c: &mut Conn| c.state().state.clone(),
            |c: &mut Conn, map: Map| c.set_state(map),
        )
        .register_fn("get", |c: &mut Conn, key: ImmutableString| {
            c.state()
                .state
                .get(key.as_str())
                .cloned()
                .unwrap_or(Dynamic::UNIT)
        })
        .register_fn(
            "set",
            |c: &mut Conn, key: ImmutableString, value: Dynamic| -> RhaiResult<()> {
                let mut map = c.state().state.clone();
                map.insert(key.as_str().into(), value);
                c.set_state(map)
            },
        )
        .register_get_set(
            "nick",
            |c: &mut Conn| c.nick(),
            |c: &mut Conn, nick: ImmutableString| -> RhaiResult<()> {
                if !valid_nick(&nick) {
                    return Err(format!(
                        "invalid nickname {nick:?}: 1-64 bytes, no control characters, not \"server\""
                    )
                    .into());
                }
                c.state().pending_nick = Some(nick.clone());
                c.push(Action::SetNick(nick));
                Ok(())
            },
        )
        .register_fn("reply", |c: &mut Conn, v: Dynamic| -> RhaiResult<()> {
            c.push(Action::Reply(to_payload(v)?));
            Ok(())
        })
        .register_fn("broadcast", |c: &mut Conn, v: Dynamic| -> RhaiResult<()> {
            c.push(Action::Broadcast(to_payload(v)?));
            Ok(())
        })
        .register_fn(
            "broadcast_others",
            |c: &mut Conn, v: Dynamic| -> RhaiResult<()> {
                c.push(Action::BroadcastOthers(to_payload(v)?));
                Ok(())
            },
        )
        .register_fn(
            "publish",
            |c: &mut Conn, room: ImmutableString, v: Dynamic| -> RhaiResult<()> {
                c.push(Action::Publish(room.to_string(), to_payload(v)?));
                Ok(())
            },
        )
        .register_fn(
            "send_to",
            |c: &mut Conn, nick: ImmutableString, v: Dynamic| -> RhaiResult<()> {
                c.push(Action::SendTo(nick.to_string(), to_payload(v)?));
                Ok(())
            },
        )
        .register_fn(
            "send_to_conn",
            |c: &mut Conn, id: i64, v: Dynamic| -> RhaiResult<()> {
                let id = ConnId::try_from(id)
                    .map_err(|_| -> Box<EvalAltResult> { "invalid connection id".into() })?;
                c.push(Action::SendToConn(id, to_payload(v)?));
                Ok(())
            },
        )
        .register_fn(
            "send_to_user",
            |c: &mut Conn, user: ImmutableString, v: Dynamic| -> RhaiResult<()> {
                c.push(Action::SendToUser(user.to_string(), to_payload(v)?));
                Ok(())
            },
        )
        .register_fn("drop", |c: &mut Conn| c.push(Action::Drop))
        .register_fn(
            "error",
            |c: &mut Conn, code: ImmutableString, reason: ImmutableString| -> RhaiResult<()> {
                let ok = !code.is_empty()
                    && code.len() <= 32
                    && code
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit());
                if !ok {
                    return Err(format!("invalid error code {code:?}: 1-32 of a-z 0-9 _").into());
                }
                let reason = close::truncate_utf8(&reason, 200).to_string();
                c.push(Action::Error(code.to_string(), reason));
                Ok(())
            },
        )
        .register_fn("close", |c: &mut Conn| {
            c.push(Action::Close(close::NORMAL, String::new()));
        })
        .register_fn("close", |c: &mut Conn, code: i64| -> RhaiResult<()> {
            c.push(Action::Close(close_code(code)?, String::new()));
            Ok(())
        })
        .register_fn(
            "close",
            |c: &mut Conn, code: i64, reason: ImmutableString| -> RhaiResult<()> {
                let reason = close::truncate_utf8(&reason, 123).to_string();
                c.push(Action::Close(close_code(code)?, reason));
                Ok(())
            },
        )
        .register_fn("to_string", |c: &mut Conn| {
            format!("Conn(id={}, nick={})", c.0.id, c.nick())
        });
}

fn close_code(code: i64) -> RhaiResult<u16> {
    u16::try_from(code)
        .ok()
        .filter(|c| close::is_script_code(*c))
        .ok_or_else(|| {
            format!("invalid close code {code}: use 1000, 1001, 1003, 1007-1009, 1011 or 3000-4999")
                .into()
        })
}
