//! The HTTP API for application backends: off without a key, 401 with a wrong
//! one, and with the right one: rooms, presence, history, publish, disconnect.

mod common;

use std::net::SocketAddr;

use common::{json, TestServer, V1};
use serde_json::{json as j, Value};

const KEY: &str = "0123456789abcdef-test-key";

async fn server() -> TestServer {
    let mut c = common::test_config();
    c.api.key = Some(KEY.into());
    c.limits.rate.messages_per_second = 0;
    TestServer::start(c).await
}

async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    common::api_call(addr, method, path, key, body).await
}

/// Without `api.key` the API does not exist.
#[tokio::test]
async fn api_is_off_without_a_key() {
    let srv = TestServer::start_default().await;
    let (status, body) = call(srv.addr, "GET", "/api/rooms", Some(KEY), None).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    srv.stop().await;
}

/// A missing or wrong key is 401 with a JSON error.
#[tokio::test]
async fn wrong_key_is_401() {
    let srv = server().await;
    // Keys are compared as digests: a prefix or an extension of the right
    // key is as wrong as any other.
    let longer = format!("{KEY}x");
    let keys = [
        None,
        Some("wrong"),
        Some("0123456789abcdef-test-kez"),
        Some(&KEY[..KEY.len() - 1]),
        Some(longer.as_str()),
    ];
    for key in keys {
        let (status, body) = call(srv.addr, "GET", "/api/rooms", key, None).await;
        assert_eq!(status, 401, "{key:?}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    assert_eq!(srv.metric("roomcast_api_unauthorized_total").await, 5.0);
    srv.stop().await;
}

/// Rooms with member counts, presence, history; unknown rooms are 404.
#[tokio::test]
async fn rooms_presence_and_history() {
    let srv = server().await;
    let mut raw = srv.connect("/chat/api").await;
    raw.recv_json().await;
    let mut v1 = V1::connect(&srv, "/chat", &[]).await;
    v1.join("chat/api").await;
    v1.send(j!({"type": "publish", "room": "chat/api", "data": "hello", "id": 1}))
        .await;
    v1.until("ack").await;

    let (status, rooms) = call(srv.addr, "GET", "/api/rooms", Some(KEY), None).await;
    assert_eq!(status, 200);
    assert_eq!(rooms["rooms"], j!([{"room": "chat/api", "members": 2}]));
    assert_eq!(rooms["connections"], 2);

    let (_, presence) = call(
        srv.addr,
        "GET",
        "/api/rooms/presence?room=chat/api",
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(presence["members"].as_array().unwrap().len(), 2);

    let (_, history) = call(
        srv.addr,
        "GET",
        "/api/rooms/history?room=chat/api&since=2",
        Some(KEY),
        None,
    )
    .await;
    let messages = history["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{history}");
    assert_eq!(messages[0]["offset"], 3);
    assert_eq!(messages[0]["data"], json("message", "user2:hello"));

    let (status, body) = call(
        srv.addr,
        "GET",
        "/api/rooms/presence?room=chat/none",
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("no_room"))
    );
    // Without `?room=`, a bad request (not an unknown room), as documented.
    for path in ["/api/rooms/presence", "/api/rooms/history"] {
        let (status, body) = call(srv.addr, "GET", path, Some(KEY), None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{path}"
        );
    }
    let (status, _) = call(
        srv.addr,
        "GET",
        "/api/rooms/history?room=chat/api&since=x",
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(status, 400);
    srv.stop().await;
}

/// Publishing from the backend reaches raw and v1 members, with an offset.
#[tokio::test]
async fn publish_reaches_every_member() {
    let srv = server().await;
    let mut raw = srv.connect("/chat/news").await;
    raw.recv_json().await;
    let mut v1 = V1::connect(&srv, "/chat", &[]).await;
    v1.join("chat/news").await;
    // The chat script announces the v1 member to everyone in the room, itself included.
    assert_eq!(raw.recv_json().await, json("enter", "user2 comes in"));
    assert_eq!(v1.until("message").await["offset"], 2);
    let (status, body) = call(
        srv.addr,
        "POST",
        "/api/publish",
        Some(KEY),
        Some(j!({"room": "chat/news", "data": {"type": "message", "data": "server:maintenance at 5"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, j!({"room": "chat/news", "offset": 3}));
    assert_eq!(
        raw.recv_json().await,
        json("message", "server:maintenance at 5")
    );
    let msg = v1.until("message").await;
    assert_eq!(
        msg["from"],
        j!({"conn": null, "nick": "server", "user": null})
    );
    assert_eq!(msg["offset"], 3);

    let (status, body) = call(
        srv.addr,
        "POST",
        "/api/publish",
        Some(KEY),
        Some(j!({"room": "chat/news"})),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, _) = call(
        srv.addr,
        "POST",
        "/api/publish",
        Some(KEY),
        Some(j!({"room": "chat/none", "data": 1})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(srv.addr, "GET", "/api/publish", Some(KEY), None).await;
    assert_eq!(status, 405);
    srv.stop().await;
}

/// Disconnect one connection, or every connection of a user (4000).
#[tokio::test]
async fn disconnect_a_connection_or_a_user() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let mut c = common::test_config();
    c.api.key = Some(KEY.into());
    c.auth.hs256_secret = Some("api-test-secret".into());
    let srv = TestServer::start(c).await;
    let token = encode(
        &Header::default(),
        &j!({"sub": "mallory"}),
        &EncodingKey::from_secret(b"api-test-secret"),
    )
    .unwrap();
    let mut m1 = srv.connect(&format!("/echo?token={token}")).await;
    let mut m2 = srv.connect(&format!("/echo?token={token}")).await;
    // A roomcast.v1 client learns its connection id from its own messages.
    let mut other = V1::connect(&srv, "/chat", &[]).await;
    other.join("chat/ids").await;
    // chat.rhai announces it: the announcement comes from its connection.
    let enter = other.until("message").await;
    assert_eq!(enter["data"], json("enter", "user1 comes in"));
    let id = enter["from"]["conn"].clone();
    assert!(id.is_u64(), "{id}");

    let (status, body) = call(
        srv.addr,
        "POST",
        "/api/disconnect",
        Some(KEY),
        Some(j!({"user": "mallory"})),
    )
    .await;
    assert_eq!((status, body["disconnected"].as_u64()), (200, Some(2)));
    assert_eq!(m1.expect_close().await.0, 4000);
    assert_eq!(m2.expect_close().await.0, 4000);

    other
        .send(j!({"type": "publish", "room": "chat/ids", "data": "still here"}))
        .await;
    assert_eq!(
        other.until("message").await["data"],
        json("message", "user1:still here")
    );
    let (_, body) = call(
        srv.addr,
        "POST",
        "/api/disconnect",
        Some(KEY),
        Some(j!({"conn": id, "reason": "bye"})),
    )
    .await;
    assert_eq!(body["disconnected"], 1);
    assert_eq!(other.ws.expect_close().await, (4000, "bye".to_string()));
    let (status, _) = call(srv.addr, "POST", "/api/disconnect", Some(KEY), Some(j!({}))).await;
    assert_eq!(status, 400);
    srv.stop().await;
}
