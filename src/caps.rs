//! The connection caps: how many connections the server holds, and how many
//! from one address.
//!
//! A [`Slot`] is taken when a connection is admitted and held for the life of
//! its session, so in-flight upgrades count against the caps and a slot is
//! given back however the session ends.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use crate::config::Limits;

/// Which cap a connection hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// The server holds `limits.max_connections` connections.
    TooManyConnections,
    /// This IP holds `limits.max_connections_per_ip` connections.
    TooManyFromIp,
}

/// Connection counts against the caps.
pub struct Caps {
    active: AtomicUsize,
    per_ip: DashMap<IpAddr, usize>,
    max: usize,
    max_per_ip: usize,
}

/// One admitted connection's place; dropping it gives the place back.
pub struct Slot {
    caps: Arc<Caps>,
    ip: Option<IpAddr>,
}

impl Caps {
    /// Caps from config.
    pub fn new(limits: &Limits) -> Caps {
        Caps {
            active: AtomicUsize::new(0),
            per_ip: DashMap::new(),
            max: limits.max_connections,
            max_per_ip: limits.max_connections_per_ip,
        }
    }

    /// Admitted connections (including upgrades in flight).
    #[cfg(test)]
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Take a place for a connection from `ip` (unknown when embedded without
    /// a `PeerAddr` extension: only the global cap applies then).
    pub fn take(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Slot, Over> {
        if self.active.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.active.fetch_sub(1, Ordering::AcqRel);
            return Err(Over::TooManyConnections);
        }
        let ip = ip.map(canonical);
        if let (Some(ip), true) = (ip, self.max_per_ip > 0) {
            let mut n = self.per_ip.entry(ip).or_insert(0);
            if *n >= self.max_per_ip {
                drop(n);
                self.active.fetch_sub(1, Ordering::AcqRel);
                return Err(Over::TooManyFromIp);
            }
            *n += 1;
        }
        Ok(Slot {
            caps: self.clone(),
            ip: ip.filter(|_| self.max_per_ip > 0),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            if let Some(mut n) = self.caps.per_ip.get_mut(&ip) {
                *n = n.saturating_sub(1);
            }
            self.caps.per_ip.remove_if(&ip, |_, n| *n == 0);
        }
        self.caps.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An IPv4 client seen through an IPv6 socket counts as its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_are_enforced_and_released() {
        let limits = Limits {
            max_connections: 3,
            max_connections_per_ip: 2,
            ..Limits::default()
        };
        let caps = Arc::new(Caps::new(&limits));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let a = caps.take(Some(ip)).unwrap();
        let _b = caps.take(Some(ip)).unwrap();
        assert_eq!(caps.take(Some(ip)).err(), Some(Over::TooManyFromIp));
        let _c = caps.take(Some(other)).unwrap();
        assert_eq!(caps.take(Some(other)).err(), Some(Over::TooManyConnections));
        drop(a);
        let _d = caps.take(Some(ip)).unwrap();
        assert_eq!(caps.active(), 3);
    }

    #[test]
    fn mapped_ipv4_counts_as_ipv4() {
        let limits = Limits {
            max_connections_per_ip: 1,
            ..Limits::default()
        };
        let caps = Arc::new(Caps::new(&limits));
        let _a = caps.take(Some("127.0.0.1".parse().unwrap())).unwrap();
        assert!(caps
            .take(Some("::ffff:127.0.0.1".parse().unwrap()))
            .is_err());
    }
}
