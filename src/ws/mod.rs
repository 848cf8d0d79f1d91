//! The WebSocket transport: the upgrade (handshake, admission, the session
//! opened before the 101), the strict frame decoder, and the driver that
//! reads, hands messages to the session core, and writes its outbox.
//!
//! fastwebsockets does the HTTP upgrade handshake; frames are decoded and
//! encoded here and in `wire::frame`.

mod decoder;
mod driver;
pub(crate) mod socket;
mod upgrade;
mod writer;

pub use decoder::Decoder;
pub(crate) use decoder::{Message, ReadError};
pub(crate) use upgrade::upgrade;
