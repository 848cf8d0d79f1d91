//! The recipes of docs/scripting.md (scripts/examples/*.rhai) do what the
//! guide says, and the guide shows them verbatim.

mod common;

use std::path::Path;

use common::{json, TestServer, V1};
use futures_util::SinkExt;
use roomcast::config::RouteConfig;
use serde_json::json as j;
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "recipes-test-secret";

async fn server() -> TestServer {
    let mut c = common::test_config();
    c.limits.rate.messages_per_second = 0;
    c.auth.hs256_secret = Some(SECRET.into());
    c.routes
        .push(RouteConfig::script("mod", "examples/moderation.rhai"));
    c.routes
        .push(RouteConfig::script("bot", "examples/bot.rhai"));
    c.routes
        .push(RouteConfig::script("router", "examples/router.rhai"));
    // As docs/scripting.md shows it: the bot in chat rooms named help-*.
    c.rooms.push(roomcast::config::RoomPolicy {
        pattern: "chat/help-*".into(),
        script: Some("examples/bot.rhai".into()),
        ..Default::default()
    });
    TestServer::start(c).await
}

fn token(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Word filter, slow mode, and muting by claim.
#[tokio::test]
async fn moderation_recipe() {
    let srv = server().await;
    let mut a = srv.connect("/mod").await;
    // Both in one write: the second arrives well within the 2 s slow mode
    // however busy the machine is.
    a.inner.feed(Message::text("oh heck")).await.unwrap();
    a.inner.feed(Message::text("too fast")).await.unwrap();
    a.inner.flush().await.unwrap();
    assert_eq!(a.recv_json().await, json("message", "user1:oh ****"));
    assert_eq!(
        a.recv_json().await,
        json("error", "slow mode: one message every 2 seconds")
    );
    let muted = token(j!({"sub": "troll", "muted": true}));
    let mut m = srv.connect(&format!("/mod?token={muted}")).await;
    m.send_text("hello").await;
    assert_eq!(
        m.recv_json().await,
        json("error", "you are muted in this room")
    );
    srv.stop().await;
}

/// A bot answers commands and lets chat through.
#[tokio::test]
async fn bot_recipe() {
    let srv = server().await;
    let mut a = srv.connect("/bot").await;
    a.send_text("!help").await;
    assert!(a.recv_text().await.starts_with("commands: "));
    a.send_text("!echo ping").await;
    assert_eq!(a.recv_text().await, "ping");
    a.send_text("!rooms").await;
    assert_eq!(a.recv_text().await, r#"you are in: ["bot/lobby"]"#);
    a.send_text("!count").await;
    assert_eq!(a.recv_text().await, "commands so far: 1");
    a.send_text("!count").await;
    assert_eq!(a.recv_text().await, "commands so far: 2");
    a.send_text("hi").await;
    assert_eq!(a.recv_json().await, json("message", "user1:hi"));
    // The room policy of docs/scripting.md: the bot in chat/help-desk, not in
    // chat/lobby.
    let mut desk = srv.connect("/chat/help-desk").await;
    desk.send_text("!echo ping").await;
    assert_eq!(desk.recv_text().await, "ping");
    let mut lobby = srv.connect("/chat/lobby").await;
    lobby.recv_json().await;
    lobby.send_text("!echo ping").await;
    assert_eq!(
        lobby.recv_json().await["type"],
        "message",
        "the chat script"
    );
    srv.stop().await;
}

/// Routing by prefix: DMs by nick and by user, /me, and posting to another room.
#[tokio::test]
async fn router_recipe() {
    let srv = server().await;
    let bob = token(j!({"sub": "bob"}));
    let mut b = srv.connect(&format!("/router?token={bob}")).await; // user1
    let mut a = srv.connect("/router").await; // user2
    a.send_text("@user1 secret").await;
    assert_eq!(b.recv_text().await, "dm from user2: secret");
    a.send_text("@@bob to all of bob").await;
    assert_eq!(b.recv_text().await, "dm from user2: to all of bob");
    a.send_text("/me waves").await;
    assert_eq!(b.recv_text().await, "* user2 waves");
    assert_eq!(a.recv_text().await, "* user2 waves");

    let mut v1 = V1::connect(&srv, "/router", &[]).await;
    v1.join("router/lobby").await;
    v1.join("router/side").await;
    v1.send(j!({"type": "publish", "room": "router/lobby", "data": "#router/side over here"}))
        .await;
    let msg = v1.until("message").await;
    assert_eq!(msg["room"], "router/side");
    assert_eq!(msg["data"], "user3: over here");
    srv.stop().await;
}

/// docs/scripting.md shows each example script verbatim.
#[test]
fn the_guide_shows_the_examples_verbatim() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("docs/scripting.md")).unwrap();
    for name in ["moderation", "bot", "router"] {
        let script =
            std::fs::read_to_string(root.join(format!("scripts/examples/{name}.rhai"))).unwrap();
        assert!(
            guide.contains(script.trim()),
            "docs/scripting.md does not show scripts/examples/{name}.rhai as it is"
        );
    }
}
