//! Property tests for the parsers of client input before the upgrade: request
//! paths and room names, query strings and tokens, Origin headers. Whatever a
//! client sends, the server answers with a status and never panics.

mod common;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::Request;
use proptest::prelude::*;
use roomcast::config::AccessConfig;
use roomcast::internals::origin_allowed;
use roomcast::names::valid_name;

fn server() -> roomcast::Server {
    roomcast::Server::new(common::test_config()).unwrap()
}

fn answer(server: &roomcast::Server, req: Request<Empty<Bytes>>) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(server.handle(req)).status().as_u16()
}

proptest! {
    /// Any path, upgrade or not: a known status, never a panic.
    #[test]
    fn any_path_gets_a_status(path in "/[ -~]{0,80}", upgrade in any::<bool>()) {
        let Ok(uri) = path.parse::<hyper::Uri>() else { return Ok(()) };
        let mut req = Request::builder().uri(uri);
        if upgrade {
            req = req
                .header("connection", "Upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-version", "13")
                .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        }
        let status = answer(&server(), req.body(Empty::new()).unwrap());
        // A hand-built request has no connection behind it: a valid upgrade is
        // answered 101 and its session ends at once, as nothing can be upgraded.
        prop_assert!([101, 200, 400, 404, 426, 503].contains(&status), "{path}: {status}");
    }

    /// Room and route names: every string of 1-64 characters from the safe
    /// alphabet is accepted, and none that is empty, longer, or has one
    /// character from outside it.
    #[test]
    fn names_are_exactly_1_to_64_safe_characters(
        name in "[A-Za-z0-9._-]{0,70}",
        bad in "[^A-Za-z0-9._-]",
        at in any::<prop::sample::Index>(),
    ) {
        let ok = (1..=64).contains(&name.len());
        prop_assert_eq!(valid_name(&name), ok, "{:?}", name);
        // One foreign character (a slash, a space, a non-ASCII letter…)
        // anywhere makes it invalid.
        let chars: Vec<char> = name.chars().collect();
        let i = at.index(chars.len() + 1);
        let tainted: String = chars[..i].iter().chain(bad.chars().collect::<Vec<_>>().iter()).chain(&chars[i..]).collect();
        prop_assert!(!valid_name(&tainted), "{:?}", tainted);
    }

    /// Any query string and Authorization header: token extraction never panics,
    /// and a token that is present is always verified (so garbage is refused).
    #[test]
    fn token_sources_never_panic(query in "[ -~]{0,100}", auth in "[ -~]{0,100}") {
        let uri = format!("/chat?{}", query.replace(' ', "%20").replace('#', "%23"));
        let Ok(uri) = uri.parse::<hyper::Uri>() else { return Ok(()) };
        let mut req = Request::builder().uri(uri);
        if let Ok(v) = hyper::header::HeaderValue::from_str(&auth) {
            req = req.header("authorization", v);
        }
        let req = req.body(()).unwrap();
        let _ = roomcast::internals::token_from_request(&req);
        let cfg = roomcast::config::AuthConfig {
            hs256_secret: Some("k".into()),
            ..Default::default()
        };
        let a = roomcast::internals::Authenticator::new(&cfg).unwrap().unwrap();
        if let Some(t) = roomcast::internals::token_from_request(&req) {
            prop_assert!(a.verify(&t).is_err(), "garbage token {t:?} accepted");
        }
    }

    /// Origins: an allow-list of `*.example.com` admits every subdomain of
    /// example.com, and never example.com itself, nor hosts that merely end in
    /// "example.com" or contain it.
    #[test]
    fn wildcard_origins_match_exactly_the_subdomains(
        label in "[a-z0-9-]{1,20}(\\.[a-z0-9-]{1,10}){0,2}",
        shape in 0..5u8,
        scheme in "(http|https)",
    ) {
        let access = AccessConfig {
            allowed_origins: vec!["*.example.com".into()],
            allow_missing_origin: false,
        };
        let (host, subdomain) = match shape {
            0 => (format!("{label}.example.com"), true),
            1 => (format!("{label}.EXAMPLE.com"), true),
            2 => (format!("{label}example.com"), false),
            3 => (format!("{label}.example.com.{label}"), false),
            _ => ("example.com".to_string(), false),
        };
        let origin = format!("{scheme}://{host}");
        prop_assert_eq!(origin_allowed(&access, Some(&origin)), subdomain, "{}", origin);
    }
}
