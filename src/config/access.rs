//! `[access]`, `[auth]` and `[api]`: who may connect, and who may call the API.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{bad, Error};

/// Who may open a WebSocket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// Origins (as browsers send them: `https://chat.example.com`) allowed to
    /// open WebSockets; `*.example.com` matches subdomains (over `http` or
    /// `https`: a pattern without a scheme is a web page's). Empty = allow every
    /// origin (the default). With a list, other origins get 403: protection
    /// against cross-site WebSocket hijacking.
    pub allowed_origins: Vec<String>,
    /// Allow requests without an `Origin` header (non-browser clients) when
    /// `allowed_origins` is set.
    pub allow_missing_origin: bool,
}

impl Default for AccessConfig {
    fn default() -> Self {
        AccessConfig {
            allowed_origins: Vec::new(),
            allow_missing_origin: true,
        }
    }
}

impl AccessConfig {
    pub(super) fn validate(&self) -> Result<(), Error> {
        for (i, o) in self.allowed_origins.iter().enumerate() {
            if o.is_empty() || o.ends_with('/') {
                return bad(
                    &format!("access.allowed_origins[{i}]"),
                    "must look like https://host[:port] or *.example.com (no trailing slash)",
                );
            }
        }
        Ok(())
    }
}

/// JWT connect tokens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Refuse WebSocket upgrades without a valid token (401).
    pub required: bool,
    /// Shared secret for HS256 tokens.
    pub hs256_secret: Option<String>,
    /// PEM file with the RSA public key for RS256 tokens.
    pub rs256_public_key_file: Option<PathBuf>,
    /// Required `iss` claim, if set.
    pub issuer: Option<String>,
    /// Required `aud` claim, if set.
    pub audience: Option<String>,
    /// Claim listing the rooms a token may join (`route/room` patterns, `*`
    /// at the end matches any suffix). Absent from a token = any room.
    pub rooms_claim: String,
    /// Clock skew tolerated when checking `exp` and `nbf`.
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            required: false,
            hs256_secret: None,
            rs256_public_key_file: None,
            issuer: None,
            audience: None,
            rooms_claim: "rooms".to_string(),
            leeway: Duration::from_secs(0),
        }
    }
}

impl AuthConfig {
    pub(super) fn validate(&self) -> Result<(), Error> {
        if self.required && self.hs256_secret.is_none() && self.rs256_public_key_file.is_none() {
            return bad(
                "auth.required",
                "needs auth.hs256_secret or auth.rs256_public_key_file",
            );
        }
        if self.hs256_secret.as_deref() == Some("") {
            return bad("auth.hs256_secret", "must not be empty");
        }
        Ok(())
    }
}

/// The HTTP API and the operator view (`/admin`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Bearer key for `/api` and `/admin` (its name in logs and metrics:
    /// `default`); both are off (404) while no key is set.
    pub key: Option<String>,
    /// More keys, by name (`alice = "…"`): what an action was done with is
    /// logged and counted under the key's name.
    pub keys: BTreeMap<String, String>,
}

/// The name `api.key` goes by in logs and metrics.
pub const DEFAULT_KEY_NAME: &str = "default";

impl ApiConfig {
    pub(super) fn validate(&self) -> Result<(), Error> {
        if self.key.as_deref().is_some_and(|k| k.len() < 16) {
            return bad("api.key", "must be at least 16 characters");
        }
        for (name, key) in &self.keys {
            let well_formed = !name.is_empty()
                && name.len() <= 32
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !well_formed {
                return bad(
                    &format!("api.keys.{name}"),
                    "a key's name is 1 to 32 letters, digits, `_` or `-`",
                );
            }
            if name == DEFAULT_KEY_NAME {
                return bad(
                    "api.keys.default",
                    "`default` is the name of `api.key`; choose another",
                );
            }
            if key.len() < 16 {
                return bad(
                    &format!("api.keys.{name}"),
                    "must be at least 16 characters",
                );
            }
        }
        Ok(())
    }

    /// Whether any key is set (the API and the operator view are on).
    pub fn enabled(&self) -> bool {
        self.key.is_some() || !self.keys.is_empty()
    }

    /// Every key with its name.
    pub fn named_keys(&self) -> impl Iterator<Item = (&str, &str)> {
        self.key
            .as_deref()
            .map(|k| (DEFAULT_KEY_NAME, k))
            .into_iter()
            .chain(self.keys.iter().map(|(n, k)| (n.as_str(), k.as_str())))
    }
}
