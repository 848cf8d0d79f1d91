//! A client's permessage-deflate offers, read as RFC 7692 §7 says: the
//! first the server can take, or why none.

use super::{Agreed, MAX_WINDOW_BITS, NAME};
use crate::metrics::Declined;

/// One offer as read: what the server answers depends on its budget too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Offer {
    pub(super) agreed: Agreed,
    /// The client bounded the server's window (the answer says the window).
    pub(super) server_bits: bool,
    /// The client asked not to take its context over.
    pub(super) client_nct: bool,
    /// The client's `client_max_window_bits`: `Some(None)` offered without
    /// a value (it can take a bound), `Some(Some(n))` with one.
    pub(super) client_bits: Option<Option<u8>>,
}

/// The outcome of reading a client's offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Negotiation {
    /// Accepted.
    Accepted(Offer),
    /// The client offered permessage-deflate only in ways the server
    /// declines (the connection goes on without it).
    Declined(Declined),
    /// Nothing offered.
    None,
}

/// The first offer in `offers` (header values, each a comma-separated list
/// of extensions) the server takes.
pub(super) fn negotiate<'a>(offers: impl Iterator<Item = &'a str>) -> Negotiation {
    let mut declined = None;
    for offer in offers.flat_map(|v| v.split(',')) {
        let mut params = offer.split(';').map(str::trim);
        if !params.next().is_some_and(|n| n.eq_ignore_ascii_case(NAME)) {
            continue;
        }
        match agree(params) {
            Ok(offer) => return Negotiation::Accepted(offer),
            // Invalid outranks unsupported: it is what an operator should see.
            Err(why) => {
                if declined != Some(Declined::Invalid) {
                    declined = Some(why);
                }
            }
        }
    }
    declined.map_or(Negotiation::None, Negotiation::Declined)
}

/// One offer's parameters, as the server can take them.
fn agree<'a>(params: impl Iterator<Item = &'a str>) -> Result<Offer, Declined> {
    let (mut server_nct, mut client_nct, mut server_bits, mut client_bits) =
        (false, false, None, None);
    for param in params {
        let (key, value) = match param.split_once('=') {
            Some((k, v)) => {
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                (k.trim(), Some(v))
            }
            None => (param, None),
        };
        let seen = match key.to_ascii_lowercase().as_str() {
            // Repeats are refused; the server takes no context over anyway.
            "server_no_context_takeover" if value.is_none() => {
                std::mem::replace(&mut server_nct, true)
            }
            "client_no_context_takeover" if value.is_none() => {
                std::mem::replace(&mut client_nct, true)
            }
            "server_max_window_bits" => {
                let bits = window_bits(value.ok_or(Declined::Invalid)?)?;
                server_bits.replace(bits).is_some()
            }
            "client_max_window_bits" => {
                // A bound on the client's own window: the inflater's, when
                // its context is taken over (without, any window inflates
                // with 15 bits).
                let bits = value.map(window_bits).transpose()?;
                client_bits.replace(bits).is_some()
            }
            _ => return Err(Declined::Invalid),
        };
        if seen {
            return Err(Declined::Invalid);
        }
    }
    let window_bits = match server_bits {
        // zlib's raw deflate has no 256-byte window.
        Some(8) => return Err(Declined::Unsupported),
        Some(bits) => bits,
        None => MAX_WINDOW_BITS,
    };
    Ok(Offer {
        agreed: Agreed { window_bits },
        server_bits: server_bits.is_some(),
        client_nct,
        client_bits,
    })
}

/// A window size parameter: 8 to 15, digits only, no leading zero.
fn window_bits(v: &str) -> Result<u8, Declined> {
    if v.is_empty() || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Declined::Invalid);
    }
    match v.parse::<u8>() {
        Ok(bits @ 8..=15) => Ok(bits),
        _ => Err(Declined::Invalid),
    }
}
