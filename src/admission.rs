//! Who may open a WebSocket: the Origin allow-list and the connection caps.
//!
//! A [`Slot`] is taken before the 101 answer and held for the life of the
//! session, so in-flight upgrades count against the caps and a slot is given
//! back however the session ends.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use crate::config::{AccessConfig, Limits};

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server holds `limits.max_connections` connections.
    TooManyConnections,
    /// This IP holds `limits.max_connections_per_ip` connections.
    TooManyFromIp,
}

/// Connection counts against the caps.
pub struct Admission {
    active: AtomicUsize,
    per_ip: DashMap<IpAddr, usize>,
    max: usize,
    max_per_ip: usize,
}

/// One admitted connection's place; dropping it gives the place back.
pub struct Slot {
    admission: Arc<Admission>,
    ip: Option<IpAddr>,
}

impl Admission {
    /// Caps from config.
    pub fn new(limits: &Limits) -> Admission {
        Admission {
            active: AtomicUsize::new(0),
            per_ip: DashMap::new(),
            max: limits.max_connections,
            max_per_ip: limits.max_connections_per_ip,
        }
    }

    /// Admitted connections (including upgrades in flight).
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Take a place for a connection from `ip` (unknown when embedded without
    /// a [`crate::server::PeerAddr`]: only the global cap applies then).
    pub fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Slot, Refusal> {
        if self.active.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.active.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::TooManyConnections);
        }
        let ip = ip.map(canonical);
        if let (Some(ip), true) = (ip, self.max_per_ip > 0) {
            let mut n = self.per_ip.entry(ip).or_insert(0);
            if *n >= self.max_per_ip {
                drop(n);
                self.active.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::TooManyFromIp);
            }
            *n += 1;
        }
        Ok(Slot {
            admission: self.clone(),
            ip: ip.filter(|_| self.max_per_ip > 0),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            if let Some(mut n) = self.admission.per_ip.get_mut(&ip) {
                *n = n.saturating_sub(1);
            }
            self.admission.per_ip.remove_if(&ip, |_, n| *n == 0);
        }
        self.admission.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An IPv4 client seen through an IPv6 socket counts as its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Is a request with this `Origin` header (if any) allowed?
pub fn origin_allowed(access: &AccessConfig, origin: Option<&str>) -> bool {
    if access.allowed_origins.is_empty() {
        return true;
    }
    let Some(origin) = origin else {
        return access.allow_missing_origin;
    };
    access
        .allowed_origins
        .iter()
        .any(|pattern| origin_matches(pattern, origin))
}

/// `pattern` is `*`, an exact origin (`https://a.example.com`), or a host
/// pattern with an optional scheme (`*.example.com`, `https://*.example.com`).
fn origin_matches(pattern: &str, origin: &str) -> bool {
    if pattern == "*" || pattern.eq_ignore_ascii_case(origin) {
        return true;
    }
    let (p_scheme, p_host) = split_origin(pattern);
    let (o_scheme, o_host) = split_origin(origin);
    if let Some(ps) = p_scheme {
        if !o_scheme.is_some_and(|os| os.eq_ignore_ascii_case(ps)) {
            return false;
        }
    }
    let o_host = o_host.to_ascii_lowercase();
    let p_host = p_host.to_ascii_lowercase();
    match p_host.strip_prefix("*.") {
        Some(suffix) => o_host.ends_with(&format!(".{suffix}")),
        None => o_host == p_host,
    }
}

fn split_origin(s: &str) -> (Option<&str>, &str) {
    match s.split_once("://") {
        Some((scheme, host)) => (Some(scheme), host),
        None => (None, s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(list: &[&str]) -> AccessConfig {
        AccessConfig {
            allowed_origins: list.iter().map(|s| s.to_string()).collect(),
            allow_missing_origin: false,
        }
    }

    #[test]
    fn empty_list_allows_everything() {
        assert!(origin_allowed(
            &AccessConfig::default(),
            Some("https://evil.test")
        ));
        assert!(origin_allowed(&AccessConfig::default(), None));
    }

    #[test]
    fn exact_and_wildcard_origins() {
        let a = access(&[
            "https://chat.example.com",
            "*.trusted.org",
            "http://localhost:3000",
        ]);
        assert!(origin_allowed(&a, Some("https://chat.example.com")));
        assert!(origin_allowed(&a, Some("HTTPS://CHAT.example.com")));
        assert!(!origin_allowed(&a, Some("http://chat.example.com")));
        assert!(!origin_allowed(
            &a,
            Some("https://chat.example.com.evil.test")
        ));
        assert!(origin_allowed(&a, Some("https://a.trusted.org")));
        assert!(origin_allowed(&a, Some("http://b.c.trusted.org")));
        assert!(!origin_allowed(&a, Some("https://trusted.org.evil.test")));
        assert!(!origin_allowed(&a, Some("https://eviltrusted.org")));
        assert!(origin_allowed(&a, Some("http://localhost:3000")));
        assert!(!origin_allowed(&a, Some("http://localhost:3001")));
        assert!(!origin_allowed(&a, Some("null")));
        assert!(!origin_allowed(&a, None));
    }

    #[test]
    fn caps_are_enforced_and_released() {
        let limits = Limits {
            max_connections: 3,
            max_connections_per_ip: 2,
            ..Limits::default()
        };
        let adm = Arc::new(Admission::new(&limits));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let a = adm.admit(Some(ip)).unwrap();
        let _b = adm.admit(Some(ip)).unwrap();
        assert_eq!(adm.admit(Some(ip)).err(), Some(Refusal::TooManyFromIp));
        let _c = adm.admit(Some(other)).unwrap();
        assert_eq!(
            adm.admit(Some(other)).err(),
            Some(Refusal::TooManyConnections)
        );
        drop(a);
        let _d = adm.admit(Some(ip)).unwrap();
        assert_eq!(adm.active(), 3);
    }

    #[test]
    fn mapped_ipv4_counts_as_ipv4() {
        let limits = Limits {
            max_connections_per_ip: 1,
            ..Limits::default()
        };
        let adm = Arc::new(Admission::new(&limits));
        let _a = adm.admit(Some("127.0.0.1".parse().unwrap())).unwrap();
        assert!(adm
            .admit(Some("::ffff:127.0.0.1".parse().unwrap()))
            .is_err());
    }
}
