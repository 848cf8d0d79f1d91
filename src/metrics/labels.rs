//! The label values metrics take: small fixed sets, one enum each (never
//! room names, nicknames or user ids).

/// Why a connection hit a protocol error (label values of `roomcast_protocol_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolErrorKind {
    /// Text message (or close reason) that is not UTF-8 → 1007.
    InvalidUtf8,
    /// Message or frame over the configured limit → 1009.
    TooLarge,
    /// Any other RFC 6455 violation → 1002.
    Protocol,
    /// A compressed message that is not valid deflate data → 1007.
    InvalidDeflate,
}

impl ProtocolErrorKind {
    pub(super) const ALL: [ProtocolErrorKind; 4] = [
        ProtocolErrorKind::InvalidUtf8,
        ProtocolErrorKind::TooLarge,
        ProtocolErrorKind::Protocol,
        ProtocolErrorKind::InvalidDeflate,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            ProtocolErrorKind::InvalidUtf8 => "invalid_utf8",
            ProtocolErrorKind::TooLarge => "too_large",
            ProtocolErrorKind::Protocol => "protocol",
            ProtocolErrorKind::InvalidDeflate => "invalid_deflate",
        }
    }
}

/// Why an HTTP request on a WebSocket route was refused before the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// A plain request on a WebSocket route → 426.
    NotUpgrade,
    /// An upgrade request that is not a valid RFC 6455 handshake → 400.
    BadHandshake,
    /// Unknown route or invalid room name → 404.
    NotFound,
    /// The server is shutting down → 503.
    Draining,
    /// The global connection cap is reached → 503.
    TooManyConnections,
    /// The per-IP connection cap is reached → 429.
    TooManyFromIp,
    /// The `Origin` is not allowed → 403.
    Origin,
    /// Missing, invalid or expired token → 401.
    Unauthorized,
    /// The token does not allow this room → 403.
    RoomForbidden,
    /// The route's `on_handshake` hook refused the connection.
    ScriptRefused,
    /// The room is at its policy's member cap → 503.
    RoomFull,
    /// A plain request (its body included) took longer than
    /// `limits.request_timeout` → 408.
    RequestTimeout,
}

impl RejectReason {
    pub(super) const ALL: [RejectReason; 12] = [
        RejectReason::NotUpgrade,
        RejectReason::BadHandshake,
        RejectReason::NotFound,
        RejectReason::Draining,
        RejectReason::TooManyConnections,
        RejectReason::TooManyFromIp,
        RejectReason::Origin,
        RejectReason::Unauthorized,
        RejectReason::RoomForbidden,
        RejectReason::ScriptRefused,
        RejectReason::RoomFull,
        RejectReason::RequestTimeout,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            RejectReason::NotUpgrade => "not_upgrade",
            RejectReason::BadHandshake => "bad_handshake",
            RejectReason::NotFound => "not_found",
            RejectReason::Draining => "draining",
            RejectReason::TooManyConnections => "too_many_connections",
            RejectReason::TooManyFromIp => "too_many_from_ip",
            RejectReason::Origin => "origin",
            RejectReason::Unauthorized => "unauthorized",
            RejectReason::RoomForbidden => "room_forbidden",
            RejectReason::ScriptRefused => "script_refused",
            RejectReason::RoomFull => "room_full",
            RejectReason::RequestTimeout => "request_timeout",
        }
    }
}

/// What went wrong on a socket.io connection (label values of
/// `roomcast_socketio_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketIoError {
    /// A packet that is not socket.io, or not one a client may send.
    BadPacket,
    /// A request for an engine.io session that does not exist (400).
    UnknownSession,
    /// A polling POST over the message-size limit (413).
    TooLarge,
    /// Two polling GETs at once for one session (it is closed).
    ConcurrentPolls,
    /// A binary packet whose attachments never came.
    AttachmentsTimeout,
    /// A namespace connect refused (admission, bad namespace or room).
    ConnectRefused,
    /// An engine.io handshake nothing followed within `limits.handshake_timeout`.
    HandshakeExpired,
    /// An engine.io handshake closed unused to make room for newer ones
    /// (`socketio.max_pending_handshakes`).
    HandshakeEvicted,
}

impl SocketIoError {
    pub(super) const ALL: [SocketIoError; 8] = [
        SocketIoError::BadPacket,
        SocketIoError::UnknownSession,
        SocketIoError::TooLarge,
        SocketIoError::ConcurrentPolls,
        SocketIoError::AttachmentsTimeout,
        SocketIoError::ConnectRefused,
        SocketIoError::HandshakeExpired,
        SocketIoError::HandshakeEvicted,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            SocketIoError::BadPacket => "bad_packet",
            SocketIoError::UnknownSession => "unknown_session",
            SocketIoError::TooLarge => "too_large",
            SocketIoError::ConcurrentPolls => "concurrent_polls",
            SocketIoError::AttachmentsTimeout => "attachments_timeout",
            SocketIoError::ConnectRefused => "connect_refused",
            SocketIoError::HandshakeExpired => "handshake_expired",
            SocketIoError::HandshakeEvicted => "handshake_evicted",
        }
    }
}

/// What became of a socket.io client's connection state recovery (label
/// values of `roomcast_socketio_recoveries_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Taken up: rooms and nickname back, missed messages sent.
    Recovered,
    /// No session kept under its id (the window passed, or never was).
    Unknown,
    /// Kept for another user, namespace or room: a fresh session.
    Mismatch,
    /// A room's position can no longer be resumed (history gone, a new epoch).
    Lost,
    /// The broker could not be asked.
    Unavailable,
    /// A session that ended could not be kept (the store was full or unreachable).
    NotKept,
}

impl Recovery {
    pub(super) const ALL: [Recovery; 6] = [
        Recovery::Recovered,
        Recovery::Unknown,
        Recovery::Mismatch,
        Recovery::Lost,
        Recovery::Unavailable,
        Recovery::NotKept,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            Recovery::Recovered => "recovered",
            Recovery::Unknown => "unknown",
            Recovery::Mismatch => "mismatch",
            Recovery::Lost => "lost",
            Recovery::Unavailable => "unavailable",
            Recovery::NotKept => "not_kept",
        }
    }
}

/// What a cluster node refused of what came through Redis, well-formed but
/// not to be believed (label values of `roomcast_broker_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A publication the room's stream does not have (a forged offset).
    Offset,
    /// A payload over `limits.max_message_size`.
    Size,
    /// A close code a server may not close with.
    CloseCode,
    /// A presence entry claiming more connections than a node holds.
    Presence,
    /// Another node's operator-view report, question or answer that is
    /// malformed or over its bounds, or a report more than this node keeps
    /// between two reads.
    Report,
}

impl Refused {
    pub(super) const ALL: [Refused; 5] = [
        Refused::Offset,
        Refused::Size,
        Refused::CloseCode,
        Refused::Presence,
        Refused::Report,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            Refused::Offset => "offset",
            Refused::Size => "size",
            Refused::CloseCode => "close_code",
            Refused::Presence => "presence",
            Refused::Report => "report",
        }
    }
}

/// What the cluster broker failed to do in Redis (label values of
/// `roomcast_broker_errors_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerOp {
    /// Publish into a room (the message reached this node's members only).
    Publish,
    /// Read a room's position for a join or resume.
    Recover,
    /// Read a room's history.
    History,
    /// Read or write presence (including the periodic refresh).
    Presence,
    /// Take the next `userN` of a route.
    Seq,
    /// Subscribe to or unsubscribe from channels.
    Subscribe,
    /// Reach another node (a direct send, a disconnect).
    Node,
    /// Read messages missed across a reconnect.
    Fill,
    /// A message from Redis that could not be decoded.
    Decode,
    /// Keep or take a socket.io session's state (connection state recovery).
    Session,
}

impl BrokerOp {
    pub(super) const ALL: [BrokerOp; 10] = [
        BrokerOp::Publish,
        BrokerOp::Recover,
        BrokerOp::History,
        BrokerOp::Presence,
        BrokerOp::Seq,
        BrokerOp::Subscribe,
        BrokerOp::Node,
        BrokerOp::Fill,
        BrokerOp::Decode,
        BrokerOp::Session,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            BrokerOp::Publish => "publish",
            BrokerOp::Recover => "recover",
            BrokerOp::History => "history",
            BrokerOp::Presence => "presence",
            BrokerOp::Seq => "seq",
            BrokerOp::Subscribe => "subscribe",
            BrokerOp::Node => "node",
            BrokerOp::Fill => "fill",
            BrokerOp::Decode => "decode",
            BrokerOp::Session => "session",
        }
    }
}

/// How a client is connected (the `transport` label of
/// `roomcast_connections_by_transport`): a fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A WebSocket connection on a route (raw or roomcast.v1).
    WebSocket,
    /// A socket.io namespace connection (long-polling or WebSocket underneath).
    SocketIo,
}

impl Transport {
    /// Every transport, in `as usize` order.
    pub const ALL: [Transport; 2] = [Transport::WebSocket, Transport::SocketIo];

    /// Metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::SocketIo => "socketio",
        }
    }
}
