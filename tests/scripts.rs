//! Script behaviour: hot reload, broken edits, runtime errors, and the actions
//! scripts can take.

mod common;

use common::{config_with_route, temp_scripts, TestServer, WAIT};
use roomcast::script::ReloadEvent;
use tokio::sync::broadcast;

async fn next_reload(events: &mut broadcast::Receiver<ReloadEvent>) -> ReloadEvent {
    tokio::time::timeout(WAIT, events.recv())
        .await
        .expect("a reload event in time")
        .expect("event channel open")
}

/// Saving a script changes behaviour for the next message, on a connection
/// opened before the change, without any request to reload; a broken edit
/// keeps the old version.
#[tokio::test]
async fn hot_reload_applies_good_edits_and_keeps_old_version_on_bad_ones() {
    let dir = temp_scripts();
    let mut config = common::test_config();
    config.scripts.dir = dir.path().to_path_buf();
    config.scripts.watch = true;
    let srv = TestServer::start(config).await;
    let mut events = srv.server.scripts().subscribe();
    let mut ws = srv.connect("/echo").await;
    ws.send_text("one").await;
    assert_eq!(ws.recv_text().await, "one");

    let path = dir.path().join("echo.rhai");
    std::fs::write(
        &path,
        "fn on_message(conn, text) { conn.reply(`v2:${text}`); }\n",
    )
    .unwrap();
    // The save alone triggers the reload (within WAIT; the debounce is 50 ms,
    // and a busy machine may take longer than that, so no tighter bound).
    let ev = next_reload(&mut events).await;
    assert_eq!(ev.script, "echo.rhai");
    assert!(ev.result.is_ok(), "{:?}", ev.result);
    ws.send_text("two").await;
    assert_eq!(ws.recv_text().await, "v2:two");

    // A syntax error: the old version keeps running, the error names file:line:col.
    std::fs::write(
        &path,
        "fn on_message(conn, text) {\n    conn.reply(text +);\n}\n",
    )
    .unwrap();
    let err = next_reload(&mut events).await.result.unwrap_err();
    assert!(err.file.ends_with("echo.rhai"), "{err}");
    assert_eq!(err.line, 2, "{err}");
    assert!(err.column > 0, "{err}");
    ws.send_text("three").await;
    assert_eq!(ws.recv_text().await, "v2:three");

    // A script without its required hook is refused the same way.
    std::fs::write(&path, "fn on_connect(conn) { }\n").unwrap();
    let err = next_reload(&mut events).await.result.unwrap_err();
    assert!(err.message.contains("on_message"), "{err}");
    ws.send_text("four").await;
    assert_eq!(ws.recv_text().await, "v2:four");

    assert_eq!(
        srv.metric("roomcast_script_reloads_total{result=\"error\"}")
            .await,
        2.0
    );
    assert_eq!(
        srv.metric("roomcast_script_reloads_total{result=\"ok\"}")
            .await,
        1.0
    );
    assert_eq!(
        srv.metric("roomcast_connections").await,
        1.0,
        "nobody was dropped"
    );
    assert_eq!(
        srv.metric("roomcast_scripts_stale").await,
        1.0,
        "echo.rhai on disk is not what runs"
    );

    // Undoing the broken edit (back to the running version) clears that.
    std::fs::write(
        &path,
        "fn on_message(conn, text) { conn.reply(`v2:${text}`); }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("shout.rhai"),
        "fn on_message(conn, text) { text }\n",
    )
    .unwrap();
    assert_eq!(next_reload(&mut events).await.script, "shout.rhai");
    assert_eq!(srv.metric("roomcast_scripts_stale").await, 0.0);
    srv.stop().await;
}

/// A script error drops that message only: it is logged and counted, and the
/// connection stays open for the next one.
#[tokio::test]
async fn script_error_drops_the_message_and_keeps_the_connection() {
    let dir = temp_scripts();
    std::fs::write(
        dir.path().join("fragile.rhai"),
        "fn on_message(conn, text) {\n    if text == \"boom\" { throw \"kaboom\"; }\n    conn.reply(text);\n}\n",
    )
    .unwrap();
    let srv = TestServer::start(config_with_route(dir.path(), "fragile")).await;
    let mut ws = srv.connect("/fragile").await;
    ws.send_text("boom").await;
    ws.send_text("after").await;
    assert_eq!(
        ws.recv_text().await,
        "after",
        "the failing message produced nothing"
    );
    assert_eq!(
        srv.metric("roomcast_script_errors_total{hook=\"message\"}")
            .await,
        1.0
    );
    assert_eq!(
        srv.metric("roomcast_messages_dropped_total{reason=\"script_error\"}")
            .await,
        1.0
    );
    srv.stop().await;
}

/// With `scripts.on_error = "close"`, a script error closes with 1011 instead.
#[tokio::test]
async fn script_error_can_close_with_1011() {
    let dir = temp_scripts();
    std::fs::write(
        dir.path().join("fragile.rhai"),
        "fn on_message(conn, text) { throw \"nope\"; }\n",
    )
    .unwrap();
    let mut config = config_with_route(dir.path(), "fragile");
    config.scripts.on_error = roomcast::config::OnScriptError::Close;
    let srv = TestServer::start(config).await;
    let mut ws = srv.connect("/fragile").await;
    ws.send_text("x").await;
    assert_eq!(ws.expect_close().await.0, 1011);
    assert_eq!(
        srv.metric("roomcast_script_errors_total{hook=\"message\"}")
            .await,
        1.0
    );
    assert_eq!(
        srv.metric("roomcast_messages_dropped_total{reason=\"script_error\"}")
            .await,
        1.0
    );
    assert_eq!(srv.wait_metric("roomcast_connections", 0.0).await, 0.0);
    srv.stop().await;
}

/// A runaway loop is stopped by the operations limit; the connection survives.
#[tokio::test]
async fn runaway_script_is_stopped_by_the_operation_limit() {
    let dir = temp_scripts();
    std::fs::write(
        dir.path().join("spin.rhai"),
        "fn on_message(conn, text) {\n    if text == \"spin\" { loop { } }\n    conn.reply(text);\n}\n",
    )
    .unwrap();
    let srv = TestServer::start(config_with_route(dir.path(), "spin")).await;
    let mut ws = srv.connect("/spin").await;
    ws.send_text("spin").await;
    ws.send_text("alive").await;
    assert_eq!(ws.recv_text().await, "alive");
    assert_eq!(
        srv.metric("roomcast_script_errors_total{hook=\"message\"}")
            .await,
        1.0
    );
    assert_eq!(
        srv.metric("roomcast_messages_dropped_total{reason=\"script_error\"}")
            .await,
        1.0
    );
    srv.stop().await;
}

/// Nick changes, direct messages, broadcast to others, and close with a code.
#[tokio::test]
async fn script_actions_nick_dm_others_and_close() {
    let dir = temp_scripts();
    std::fs::write(
        dir.path().join("room.rhai"),
        r#"
fn on_connect(conn) {
    conn.reply(`hello ${conn.nick} #${conn.seq} in ${conn.room}`);
}
fn on_message(conn, text) {
    if text.starts_with("/nick ") {
        conn.nick = text.sub_string(6);
        conn.reply(`you are ${conn.nick}`);
    } else if text.starts_with("/dm ") {
        let rest = text.sub_string(4);
        let space = rest.index_of(" ");
        conn.send_to(rest.sub_string(0, space), `dm from ${conn.nick}: ${rest.sub_string(space + 1)}`);
    } else if text == "/bye" {
        conn.reply("bye");
        conn.close(4000, "see you");
    } else {
        conn.broadcast_others(`${conn.nick}: ${text}`);
    }
}
"#,
    )
    .unwrap();
    let srv = TestServer::start(config_with_route(dir.path(), "room")).await;
    let mut a = srv.connect("/room/x").await;
    assert_eq!(a.recv_text().await, "hello user1 #1 in room/x");
    let mut b = srv.connect("/room/x").await;
    assert_eq!(b.recv_text().await, "hello user2 #2 in room/x");

    a.send_text("/nick alice").await;
    assert_eq!(a.recv_text().await, "you are alice");
    b.send_text("/dm alice psst").await;
    assert_eq!(a.recv_text().await, "dm from user2: psst");

    a.send_text("hi all").await;
    assert_eq!(b.recv_text().await, "alice: hi all");
    b.send_text("hi alice").await;
    // `a` did not get its own "hi all": the next thing it sees is b's line.
    assert_eq!(a.recv_text().await, "user2: hi alice");

    a.send_text("/bye").await;
    assert_eq!(a.recv_text().await, "bye");
    assert_eq!(a.expect_close().await, (4000, "see you".to_string()));
    srv.stop().await;
}

/// A bad nickname or close code is a script error, not a crash.
#[tokio::test]
async fn invalid_script_arguments_are_script_errors() {
    let dir = temp_scripts();
    std::fs::write(
        dir.path().join("bad.rhai"),
        r#"
fn on_message(conn, text) {
    if text == "nick" { conn.nick = ""; }
    if text == "code" { conn.close(1005); }
    conn.reply(text);
}
"#,
    )
    .unwrap();
    let srv = TestServer::start(config_with_route(dir.path(), "bad")).await;
    let mut ws = srv.connect("/bad").await;
    ws.send_text("nick").await;
    ws.send_text("code").await;
    ws.send_text("fine").await;
    assert_eq!(ws.recv_text().await, "fine");
    assert_eq!(
        srv.metric("roomcast_script_errors_total{hook=\"message\"}")
            .await,
        2.0
    );
    srv.stop().await;
}

/// Scripts can `import` modules from the scripts directory; editing a module
/// reloads the scripts that use it.
#[tokio::test]
async fn editing_an_imported_module_reloads_its_importers() {
    module_edit_reloads_its_importer("greeting").await;
}

/// A module imported from a subdirectory (`import "lib/greeting"`) reloads
/// its importers when it changes, like one next to them.
#[tokio::test]
async fn editing_a_module_in_a_subdirectory_reloads_its_importers() {
    module_edit_reloads_its_importer("lib/greeting").await;
}

/// `greeter.rhai` imports `module` (a name relative to the scripts directory,
/// without `.rhai`); editing the module changes what the route answers.
async fn module_edit_reloads_its_importer(module: &str) {
    let dir = temp_scripts();
    let path = dir.path().join(format!("{module}.rhai"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "fn greet(name) { `hi ${name}` }\n").unwrap();
    std::fs::write(
        dir.path().join("greeter.rhai"),
        format!(
            "fn on_message(conn, text) {{\n    import \"{module}\" as g;\n    conn.reply(g::greet(text));\n}}\n"
        ),
    )
    .unwrap();
    let mut config = config_with_route(dir.path(), "greeter");
    config.scripts.watch = true;
    let srv = TestServer::start(config).await;
    let mut events = srv.server.scripts().subscribe();
    let mut ws = srv.connect("/greeter").await;
    ws.send_text("ann").await;
    assert_eq!(ws.recv_text().await, "hi ann");

    std::fs::write(&path, "fn greet(name) { `hello ${name}` }\n").unwrap();
    loop {
        let ev = next_reload(&mut events).await;
        assert!(ev.result.is_ok(), "{:?}", ev.result);
        if ev.script == "greeter.rhai" {
            break;
        }
    }
    ws.send_text("bob").await;
    assert_eq!(ws.recv_text().await, "hello bob");
    srv.stop().await;
}

/// A route whose script lives in a subdirectory (`examples/bot.rhai`, as the
/// recipes are used) reloads when that file is saved.
#[tokio::test]
async fn scripts_in_subdirectories_reload_too() {
    let dir = temp_scripts();
    std::fs::create_dir(dir.path().join("examples")).unwrap();
    let path = dir.path().join("examples/sub.rhai");
    std::fs::write(&path, "fn on_message(conn, text) { `v1:${text}` }\n").unwrap();
    let mut config = common::test_config();
    config.scripts.dir = dir.path().to_path_buf();
    config.scripts.watch = true;
    config.routes.push(roomcast::config::RouteConfig::script(
        "sub",
        "examples/sub.rhai",
    ));
    let srv = TestServer::start(config).await;
    let mut events = srv.server.scripts().subscribe();
    let mut ws = srv.connect("/sub").await;
    ws.send_text("a").await;
    assert_eq!(ws.recv_text().await, "v1:a");

    std::fs::write(&path, "fn on_message(conn, text) { `v2:${text}` }\n").unwrap();
    let ev = next_reload(&mut events).await;
    assert!(ev.result.is_ok(), "{:?}", ev.result);
    ws.send_text("b").await;
    assert_eq!(ws.recv_text().await, "v2:b");
    srv.stop().await;
}

/// Kubernetes updates a mounted ConfigMap atomically: the files are symlinks
/// through `..data`, which is itself a symlink to a timestamped directory, and
/// an update writes a new directory and renames a new `..data` over the old
/// one. No script file is ever written. This reproduces that on disk (as the
/// kubelet's AtomicWriter does) and checks that the new script takes effect.
#[cfg(unix)]
#[tokio::test]
async fn configmap_symlink_swap_reloads_the_script() {
    use std::os::unix::fs::symlink;

    let mount = tempfile::tempdir().unwrap();
    let m = mount.path();
    let publish = |version: &str, files: &[(&str, &str)]| {
        let dir = m.join(format!("..2026_11_26_04_00_00.{version}"));
        std::fs::create_dir(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let tmp = m.join("..data_tmp");
        symlink(dir.file_name().unwrap(), &tmp).unwrap();
        std::fs::rename(&tmp, m.join("..data")).unwrap();
        dir
    };
    let scripts = common::repo_scripts();
    let read = |name: &str| std::fs::read_to_string(scripts.join(name)).unwrap();
    let (echo, shout, chat) = (read("echo.rhai"), read("shout.rhai"), read("chat.rhai"));
    let first = publish(
        "000000001",
        &[
            ("echo.rhai", &echo),
            ("shout.rhai", &shout),
            ("chat.rhai", &chat),
        ],
    );
    for name in ["echo.rhai", "shout.rhai", "chat.rhai"] {
        symlink(format!("..data/{name}"), m.join(name)).unwrap();
    }

    let mut config = common::test_config();
    config.scripts.dir = m.to_path_buf();
    config.scripts.watch = true;
    let srv = TestServer::start(config).await;
    let mut events = srv.server.scripts().subscribe();
    let mut ws = srv.connect("/shout").await;
    ws.send_text("before").await;
    assert_eq!(ws.recv_text().await, "BEFORE!!!");

    // `kubectl apply` of an edited ConfigMap: only shout.rhai differs.
    let edited = "fn on_message(conn, text) { text.to_upper() + \"?!\" }\n";
    publish(
        "000000002",
        &[
            ("echo.rhai", &echo),
            ("shout.rhai", edited),
            ("chat.rhai", &chat),
        ],
    );
    std::fs::remove_dir_all(first).unwrap();
    let ev = next_reload(&mut events).await;
    assert_eq!(ev.script, "shout.rhai");
    assert!(ev.result.is_ok(), "{:?}", ev.result);
    ws.send_text("after").await;
    assert_eq!(
        ws.recv_text().await,
        "AFTER?!",
        "the new version, on the same connection"
    );
    assert_eq!(
        srv.metric("roomcast_script_reloads_total{result=\"ok\"}")
            .await,
        1.0,
        "only the changed script was reloaded"
    );
    srv.stop().await;
}
