//! The hook catalogue: which functions a script may define, with what
//! parameters, and which one it must.

use rhai::{Array, Blob, Dynamic, FuncArgs, ImmutableString};

use super::conn::Conn;
use super::request::ScriptRequest;

/// The hooks a script may define. `on_message` is required; the others are optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// `on_connect(conn)`: after the connection joined its room.
    Connect = 0,
    /// `on_message(conn, text)`: a text message arrived.
    Message = 1,
    /// `on_binary(conn, data)`: a binary message arrived (a blob). Without this
    /// hook binary messages are dropped and counted.
    Binary = 2,
    /// `on_close(conn)`: the connection is gone and has left its room.
    Close = 3,
    /// `on_handshake(req)`: before the upgrade; `req.reject(status, reason)`
    /// refuses the connection with that HTTP status.
    Handshake = 4,
    /// `on_join(conn, room)`: the connection entered a room.
    Join = 5,
    /// `on_leave(conn, room)`: the connection left a room (and is no longer in it).
    Leave = 6,
    /// `on_event(conn, name, args)`: a socket.io client emitted an event other
    /// than `message` (and the room commands); `args` is an array. Without
    /// this hook such events are dropped and counted.
    Event = 7,
}

impl Hook {
    /// Every hook, in `as usize` order.
    pub const ALL: [Hook; 8] = [
        Hook::Connect,
        Hook::Message,
        Hook::Binary,
        Hook::Close,
        Hook::Handshake,
        Hook::Join,
        Hook::Leave,
        Hook::Event,
    ];

    /// Metric label value.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Connect => "connect",
            Hook::Message => "message",
            Hook::Binary => "binary",
            Hook::Close => "close",
            Hook::Handshake => "handshake",
            Hook::Join => "join",
            Hook::Leave => "leave",
            Hook::Event => "event",
        }
    }

    /// Script function name.
    pub fn function(self) -> &'static str {
        match self {
            Hook::Connect => "on_connect",
            Hook::Message => "on_message",
            Hook::Binary => "on_binary",
            Hook::Close => "on_close",
            Hook::Handshake => "on_handshake",
            Hook::Join => "on_join",
            Hook::Leave => "on_leave",
            Hook::Event => "on_event",
        }
    }

    pub(super) fn signature(self) -> &'static str {
        match self {
            Hook::Connect => "on_connect(conn)",
            Hook::Message => "on_message(conn, text)",
            Hook::Binary => "on_binary(conn, data)",
            Hook::Close => "on_close(conn)",
            Hook::Handshake => "on_handshake(req)",
            Hook::Join => "on_join(conn, room)",
            Hook::Leave => "on_leave(conn, room)",
            Hook::Event => "on_event(conn, name, args)",
        }
    }

    pub(super) fn arity(self) -> usize {
        match self {
            Hook::Connect | Hook::Close | Hook::Handshake => 1,
            Hook::Message | Hook::Binary | Hook::Join | Hook::Leave => 2,
            Hook::Event => 3,
        }
    }

    pub(super) fn required(self) -> bool {
        self == Hook::Message
    }
}

/// A hook's arguments, as a lowered hook reads them (`lower`): the string
/// after `conn`, when there is one; and as Rhai takes them, built only when
/// Rhai runs the hook.
#[doc(hidden)]
pub trait HookArgs {
    /// The arguments as Rhai takes them.
    type Rhai: FuncArgs;
    /// Call `f` with the parameter after `conn` if it is a string.
    fn with_text<R>(&self, f: impl FnOnce(Option<&str>) -> R) -> R;
    /// The arguments for Rhai, for a call on `conn`.
    fn into_rhai(self, conn: &Conn) -> Self::Rhai;
}

/// `(conn, text)` for a hook whose second parameter is a string (the text
/// of `on_message`, the room of `on_join`/`on_leave`): made into Rhai values
/// only if Rhai runs it; a fast hook reads the text where it is.
#[doc(hidden)]
pub struct TextArgs<'a>(pub &'a str);

impl HookArgs for TextArgs<'_> {
    type Rhai = (Conn, ImmutableString);
    fn with_text<R>(&self, f: impl FnOnce(Option<&str>) -> R) -> R {
        f(Some(self.0))
    }
    fn into_rhai(self, conn: &Conn) -> Self::Rhai {
        (conn.clone(), ImmutableString::from(self.0))
    }
}

/// Arguments that are Rhai values already.
macro_rules! rhai_args {
    ($t:ty, |$s:ident| $text:expr) => {
        impl HookArgs for $t {
            type Rhai = $t;
            fn with_text<R>(&self, f: impl FnOnce(Option<&str>) -> R) -> R {
                let $s = self;
                f($text)
            }
            fn into_rhai(self, _conn: &Conn) -> Self::Rhai {
                self
            }
        }
    };
}

rhai_args!((Conn,), |_s| None);
rhai_args!((Conn, ImmutableString), |s| Some(s.1.as_str()));
rhai_args!((Conn, Blob), |_s| None);
rhai_args!((Conn, ImmutableString, Array), |_s| None);
rhai_args!((ScriptRequest,), |_s| None);

/// A roomcast.v1 publish: a string, or any JSON value.
impl HookArgs for (Conn, Dynamic) {
    type Rhai = (Conn, Dynamic);
    fn with_text<R>(&self, f: impl FnOnce(Option<&str>) -> R) -> R {
        match self.1.as_immutable_string_ref() {
            Ok(s) => f(Some(s.as_str())),
            Err(_) => f(None),
        }
    }
    fn into_rhai(self, _conn: &Conn) -> Self::Rhai {
        self
    }
}
