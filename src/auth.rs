//! JWT connect tokens (HS256 and RS256).
//!
//! A token comes from `Authorization: Bearer …` or the `token` query parameter
//! (browsers cannot set headers on a WebSocket). A valid token's `sub` becomes
//! the connection's user id, its claims are visible to scripts, and an optional
//! claim (default `rooms`) restricts which rooms it may join. `exp` and `nbf`
//! are checked when present; a token that expires while connected closes its
//! connection with 4001.

use std::collections::HashMap;

use hyper::{HeaderMap, Request, Uri};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use crate::config::AuthConfig;
use crate::error::Error;

/// Who a token says the client is.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The token's `sub`.
    pub user: String,
    /// Every claim of the token.
    pub claims: Map<String, Value>,
    /// `exp`, in seconds since the Unix epoch, if the token has one.
    pub expires_at: Option<u64>,
    rooms: Option<Vec<String>>,
}

impl Identity {
    /// May this identity join `room` (a full `route/room` name)? Patterns end
    /// in `*` to match any suffix; no rooms claim means any room.
    pub fn may_join(&self, room: &str) -> bool {
        match &self.rooms {
            None => true,
            Some(patterns) => patterns
                .iter()
                .any(|p| crate::names::pattern_matches(p, room)),
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No token where one is required.
    #[error("a token is required (Authorization: Bearer, or ?token=)")]
    Missing,
    /// The token's `exp` has passed.
    #[error("token expired")]
    Expired,
    /// Bad signature, wrong algorithm, issuer, audience, malformed claims…
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Verifies tokens with the configured keys.
pub struct Authenticator {
    keys: HashMap<Algorithm, DecodingKey>,
    required: bool,
    issuer: Option<String>,
    audience: Option<String>,
    rooms_claim: String,
    leeway: u64,
}

impl Authenticator {
    /// Build from config; `None` when no key is configured (auth is off).
    pub fn new(cfg: &AuthConfig) -> Result<Option<Authenticator>, Error> {
        let mut keys = HashMap::new();
        if let Some(secret) = &cfg.hs256_secret {
            keys.insert(
                Algorithm::HS256,
                DecodingKey::from_secret(secret.as_bytes()),
            );
        }
        if let Some(path) = &cfg.rs256_public_key_file {
            let pem = std::fs::read(path).map_err(|e| {
                Error::Config(format!(
                    "`auth.rs256_public_key_file`: cannot read {}: {e}",
                    path.display()
                ))
            })?;
            let key = DecodingKey::from_rsa_pem(&pem).map_err(|e| {
                Error::Config(format!(
                    "`auth.rs256_public_key_file`: {} is not an RSA public key in PEM: {e}",
                    path.display()
                ))
            })?;
            keys.insert(Algorithm::RS256, key);
        }
        if keys.is_empty() {
            return Ok(None);
        }
        Ok(Some(Authenticator {
            keys,
            required: cfg.required,
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            rooms_claim: cfg.rooms_claim.clone(),
            leeway: cfg.leeway.as_secs(),
        }))
    }

    /// Authenticate a request by its token (see [`token`]): `Ok(None)` when
    /// it carries none and none is required; a token that is present is
    /// always verified.
    pub fn check(&self, token: Option<&str>) -> Result<Option<Identity>, AuthError> {
        match token {
            Some(token) => self.verify(token).map(Some),
            None if self.required => Err(AuthError::Missing),
            None => Ok(None),
        }
    }

    /// Verify one token.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let header = decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let key = self.keys.get(&header.alg).ok_or_else(|| {
            AuthError::Invalid(format!("algorithm {:?} is not accepted", header.alg))
        })?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["sub"]);
        match &self.issuer {
            Some(iss) => validation.set_issuer(&[iss]),
            None => validation.iss = None,
        }
        match &self.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        let data =
            decode::<Map<String, Value>>(token, key, &validation).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid(e.to_string()),
            })?;
        let claims = data.claims;
        let user = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(AuthError::Invalid(
                    "`sub` must be a non-empty string".into(),
                ))
            }
        };
        let expires_at = match claims.get("exp") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| AuthError::Invalid("`exp` must be a number".into()))?,
            ),
        };
        let rooms = match claims.get(&self.rooms_claim) {
            None => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        AuthError::Invalid(format!(
                            "`{}` must be an array of strings",
                            self.rooms_claim
                        ))
                    })?,
            ),
            Some(_) => {
                return Err(AuthError::Invalid(format!(
                    "`{}` must be an array of strings",
                    self.rooms_claim
                )))
            }
        };
        Ok(Identity {
            user,
            claims,
            expires_at,
            rooms,
        })
    }
}

/// The token of a request: `Authorization: Bearer` first, then `?token=`.
pub fn token(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(hyper::header::AUTHORIZATION) {
        let value = value.to_str().ok()?.trim();
        let (scheme, token) = value.split_once(' ')?;
        if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() {
            return Some(token.trim().to_string());
        }
        return None;
    }
    query_param(uri.query()?, "token")
}

/// The token of a whole request (see `token`).
pub fn token_from_request<B>(req: &Request<B>) -> Option<String> {
    token(req.uri(), req.headers())
}

/// The first value of `name` in a query string, percent-decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};

    fn auth(required: bool) -> Authenticator {
        let cfg = AuthConfig {
            required,
            hs256_secret: Some("s3cret".into()),
            ..AuthConfig::default()
        };
        Authenticator::new(&cfg).unwrap().unwrap()
    }

    fn token(claims: serde_json::Value, secret: &str) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn valid_token_gives_the_subject_and_room_patterns() {
        let t = token(
            serde_json::json!({"sub": "ann", "exp": now() + 60, "rooms": ["chat/lobby", "chat/team-*"]}),
            "s3cret",
        );
        let id = auth(true).verify(&t).unwrap();
        assert_eq!(id.user, "ann");
        assert!(id.may_join("chat/lobby"));
        assert!(id.may_join("chat/team-red"));
        assert!(!id.may_join("chat/other"));
    }

    #[test]
    fn refusals() {
        let a = auth(true);
        let expired = token(
            serde_json::json!({"sub": "ann", "exp": now() - 120}),
            "s3cret",
        );
        assert_eq!(a.verify(&expired), Err(AuthError::Expired));
        let forged = token(serde_json::json!({"sub": "ann"}), "wrong");
        assert!(matches!(a.verify(&forged), Err(AuthError::Invalid(_))));
        let no_sub = token(serde_json::json!({"exp": now() + 60}), "s3cret");
        assert!(matches!(a.verify(&no_sub), Err(AuthError::Invalid(_))));
        let bad_rooms = token(serde_json::json!({"sub": "a", "rooms": "all"}), "s3cret");
        assert!(matches!(a.verify(&bad_rooms), Err(AuthError::Invalid(_))));
        assert!(matches!(a.verify("not.a.jwt"), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn token_sources() {
        let req = Request::builder()
            .uri("/chat?x=1&token=abc%2Edef")
            .body(())
            .unwrap();
        assert_eq!(token_from_request(&req).as_deref(), Some("abc.def"));
        let req = Request::builder()
            .uri("/chat?token=fromquery")
            .header("authorization", "Bearer fromheader")
            .body(())
            .unwrap();
        assert_eq!(token_from_request(&req).as_deref(), Some("fromheader"));
        let req = Request::builder().uri("/chat").body(()).unwrap();
        assert_eq!(token_from_request(&req), None);
        assert_eq!(auth(true).check(None), Err(AuthError::Missing));
        assert_eq!(auth(false).check(None), Ok(None));
    }
}
