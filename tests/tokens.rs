//! Token refresh on a live connection (docs/protocol.md, "Tokens"): a
//! `refresh` command with a fresh token for the same user moves the
//! connection's expiry and its claims without cutting it; any other token is
//! refused with `token_refused` and the old expiry stands.

mod common;

use common::{config_with_route, temp_scripts, TestServer, V1};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

const SECRET: &str = "refresh-test-secret";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn signed(claims: Value, secret: &str) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn token(claims: Value) -> String {
    signed(claims, SECRET)
}

/// A server checking tokens (required or not), with a `who` route whose
/// script answers every message with the role claim it sees now.
async fn server(required: bool) -> (TestServer, tempfile::TempDir) {
    let dir = temp_scripts();
    std::fs::write(
        dir.path().join("who.rhai"),
        "fn on_message(conn, data) { conn.reply(`${conn.user} ${conn.claims.role}`); }\n",
    )
    .unwrap();
    let mut config = config_with_route(dir.path(), "who");
    config.auth.required = required;
    config.auth.hs256_secret = Some(SECRET.into());
    (TestServer::start(config).await, dir)
}

async fn connect(srv: &TestServer, token: Option<&str>) -> V1 {
    match token {
        Some(t) => V1::connect(srv, "/who", &[("authorization", &format!("Bearer {t}"))]).await,
        None => V1::connect(srv, "/who", &[]).await,
    }
}

/// Ask the script for the role it sees (a round trip on the connection).
async fn role(v1: &mut V1) -> String {
    v1.send(json!({"type": "publish", "room": "who/r", "data": "?"}))
        .await;
    let reply = v1.until("reply").await;
    reply["data"].as_str().unwrap().to_string()
}

/// A refreshed connection outlives its first token: a connection opened
/// with the same expiry but not refreshed is closed with 4001 first, then the
/// refreshed one still answers, and its script sees the new claims.
#[tokio::test]
async fn a_refresh_moves_the_expiry_and_the_claims() {
    let (srv, _dir) = server(true).await;
    // Seconds ahead, so that a slow machine still upgrades before it expires.
    let exp = now() + 3;
    let first = token(json!({"sub": "ann", "role": "guest", "exp": exp}));
    // Opened first: were its timer not moved, it would fire no later than
    // the control's.
    let mut refreshed = connect(&srv, Some(&first)).await;
    let mut control = connect(&srv, Some(&first)).await;
    refreshed.join("who/r").await;
    assert_eq!(role(&mut refreshed).await, "ann guest");

    let later = exp + 600;
    let fresh = token(json!({"sub": "ann", "role": "admin", "exp": later}));
    refreshed
        .send(json!({"type": "refresh", "token": fresh, "id": 7}))
        .await;
    assert_eq!(
        refreshed.expect("refreshed").await,
        json!({"type": "refreshed", "exp": later, "id": 7})
    );
    assert_eq!(role(&mut refreshed).await, "ann admin");

    let (code, reason) = control.ws.expect_close().await;
    assert_eq!((code, reason.as_str()), (4001, "token expired"));
    // Past the first token's expiry, the refreshed connection carries on.
    refreshed.send(json!({"type": "nick", "id": 8})).await;
    assert_eq!(refreshed.expect("nick").await["id"], 8);
    assert_eq!(srv.metric("roomcast_token_expirations_total").await, 1.0);
    assert_eq!(
        srv.metric("roomcast_token_refreshes_total{result=\"ok\"}")
            .await,
        1.0
    );
    assert_eq!(srv.wait_metric("roomcast_connections", 1.0).await, 1.0);
    srv.stop().await;
}

/// A token for another user, signed with another key, already expired,
/// expiring earlier than the current one, or not a token at all: each is
/// refused with `token_refused`, its id and a reason; the connection stays,
/// and its first token still ends it on time.
#[tokio::test]
async fn refused_refreshes_leave_the_old_token() {
    let (srv, _dir) = server(true).await;
    let exp = now() + 4;
    let mut v1 = connect(&srv, Some(&token(json!({"sub": "ann", "exp": exp})))).await;
    let refusals = [
        (token(json!({"sub": "bob", "exp": exp + 600})), "sub"),
        (
            signed(json!({"sub": "ann", "exp": exp + 600}), "another-key"),
            "invalid token",
        ),
        (token(json!({"sub": "ann", "exp": now() - 3600})), "expired"),
        (token(json!({"sub": "ann", "exp": exp - 1})), "before"),
        ("not.a.jwt".to_string(), "invalid token"),
    ];
    for (i, (bad, why)) in refusals.iter().enumerate() {
        v1.send(json!({"type": "refresh", "token": bad, "id": i}))
            .await;
        let err = v1.expect("error").await;
        assert_eq!(
            (&err["code"], &err["id"]),
            (&json!("token_refused"), &json!(i))
        );
        let reason = err["reason"].as_str().unwrap();
        assert!(reason.contains(why), "{why:?} in {reason:?}");
    }
    v1.send(json!({"type": "refresh", "id": "no token"})).await;
    assert_eq!(v1.expect("error").await["code"], "bad_command");
    assert_eq!(
        srv.metric("roomcast_token_refreshes_total{result=\"refused\"}")
            .await,
        refusals.len() as f64
    );
    assert_eq!(
        srv.metric("roomcast_token_refreshes_total{result=\"ok\"}")
            .await,
        0.0
    );
    let (code, reason) = v1.ws.expect_close().await;
    assert_eq!((code, reason.as_str()), (4001, "token expired"));
    assert_eq!(srv.wait_metric("roomcast_connections", 0.0).await, 0.0);
    srv.stop().await;
}

/// Where tokens are optional, a connection opened without one has nothing
/// to refresh: it is refused (a refresh never changes who a connection is).
#[tokio::test]
async fn a_connection_without_a_token_cannot_take_one() {
    let (srv, _dir) = server(false).await;
    let mut v1 = connect(&srv, None).await;
    let t = token(json!({"sub": "ann", "exp": now() + 600}));
    v1.send(json!({"type": "refresh", "token": t, "id": 1}))
        .await;
    let err = v1.expect("error").await;
    assert_eq!(err["code"], "token_refused");
    assert!(
        err["reason"].as_str().unwrap().contains("without a token"),
        "{err}"
    );
    v1.send(json!({"type": "nick", "id": 2})).await;
    assert_eq!(v1.expect("nick").await["id"], 2);
    assert_eq!(
        srv.metric("roomcast_token_refreshes_total{result=\"refused\"}")
            .await,
        1.0
    );
    srv.stop().await;
}
