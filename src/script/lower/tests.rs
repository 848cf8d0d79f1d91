//! Fast hooks agree with Rhai: every shipped script, example and recipe,
//! and generated scripts, called both ways.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};

use super::*;
use crate::config::ScriptLimits;
use crate::metrics::Metrics;
use crate::script::compile::{build_engine, compile};
use crate::script::conn::Conn;
use crate::script::host::{Outcome, Script, ScriptHost};

/// Texts that differ in case handling, JSON escaping and size.
const TEXTS: &[&str] = &[
    "",
    "hello roomcast 12345",
    "HELLO",
    "straße",
    "ẞ groß",
    "İstanbul",
    "ΣΑΣ ΟΔΟΣ",
    "ǅ ǈ",
    "ⓐ Ⓐ Ⅻ",
    "🎉 emoji",
    "quote \" backslash \\ newline \n tab \t ctl \u{1} del \u{7f}",
    "ﬀ ligature",
    "a longer line of text, which is longer than the tight limit",
];
const NICKS: &[&str] = &["user1", "Zoë \"q\""];

/// The same script twice: as compiled (hooks lowered where they can be)
/// and with every hook left to Rhai.
fn pair(engine: &Engine, source: &str) -> Option<(Script, Script)> {
    let lowered = compile(engine, "t.rhai", source).ok()?;
    let mut plain = compile(engine, "t.rhai", source).ok()?;
    plain.lowered = Default::default();
    Some((Script::for_test(lowered), Script::for_test(plain)))
}

/// What a call did, as comparable text: outcome, actions, nickname after.
fn call(host: &ScriptHost, script: &Script, hook: Hook, nick: &str, arg: &str, v1: bool) -> String {
    let conn = Conn::new(7, 3, "chat", "chat/lobby", nick);
    let mut out = Vec::new();
    let outcome = match hook {
        Hook::Connect | Hook::Close => host.call(script, hook, &conn, (conn.clone(),), &mut out),
        _ if v1 => host.call(
            script,
            hook,
            &conn,
            (conn.clone(), Dynamic::from(arg.to_string())),
            &mut out,
        ),
        _ => host.call(
            script,
            hook,
            &conn,
            (conn.clone(), ImmutableString::from(arg)),
            &mut out,
        ),
    };
    let outcome = match outcome {
        Outcome::Ran => "ran".to_string(),
        Outcome::Missing => "missing".to_string(),
        Outcome::Failed(e) => format!("failed: {e}"),
    };
    format!("{outcome} {out:?} nick={}", conn.nick())
}

const HOOKS: [Hook; 5] = [
    Hook::Connect,
    Hook::Message,
    Hook::Join,
    Hook::Leave,
    Hook::Close,
];

/// Every hook of `source` called both ways on every text: the same
/// outcome, actions and nickname. Returns the hooks that were lowered.
fn agree(limits: &ScriptLimits, source: &str) -> Option<Vec<Hook>> {
    let engine = build_engine(limits, None);
    let (lowered, plain) = pair(&engine, source)?;
    let metrics = Metrics::new();
    let host = ScriptHost::for_test(build_engine(limits, None), limits.clone(), &metrics);
    for hook in HOOKS {
        for text in TEXTS {
            for nick in NICKS {
                for v1 in [false, true] {
                    assert_eq!(
                        call(&host, &lowered, hook, nick, text, v1),
                        call(&host, &plain, hook, nick, text, v1),
                        "{hook:?}({text:?}) as {nick:?}, limits {limits:?}, in\n{source}"
                    );
                }
            }
        }
    }
    let current = lowered.current();
    Some(
        HOOKS
            .into_iter()
            .filter(|h| current.is_lowered(*h))
            .collect(),
    )
}

fn tight() -> ScriptLimits {
    ScriptLimits {
        max_string_size: 24,
        max_map_size: 1,
        ..ScriptLimits::default()
    }
}

#[test]
fn the_shipped_scripts_run_lowered_and_agree_with_rhai() {
    use super::super::source::BUILTIN;
    let lowered = |name: &str| {
        let (_, source) = BUILTIN.iter().find(|(n, _)| *n == name).unwrap();
        agree(&ScriptLimits::default(), source).unwrap()
    };
    assert_eq!(lowered("echo.rhai"), [Hook::Message]);
    assert_eq!(lowered("shout.rhai"), [Hook::Message]);
    assert_eq!(
        lowered("chat.rhai"),
        [Hook::Message, Hook::Join, Hook::Leave]
    );
    // Strings past the limit: those calls run in Rhai, which refuses them.
    let strings = ScriptLimits {
        max_string_size: 24,
        ..ScriptLimits::default()
    };
    for (_, source) in BUILTIN {
        agree(&strings, source).unwrap();
    }
}

/// The example scripts and every whole script in the docs (recipes):
/// whatever of them is lowered agrees with Rhai.
#[test]
fn examples_and_recipes_agree_with_rhai() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(root.join("scripts/examples")).unwrap() {
        sources.push(std::fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    for doc in ["docs/scripting.md", "README.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for block in text.split("```rhai").skip(1) {
            let code = block.split("```").next().unwrap();
            if code.contains("fn on_message") {
                sources.push(code.to_string());
            }
        }
    }
    assert!(sources.len() >= 5, "{} scripts found", sources.len());
    let mut compiled = 0;
    for source in &sources {
        if agree(&ScriptLimits::default(), source).is_some() {
            compiled += 1;
            agree(&tight(), source);
        }
    }
    assert!(
        compiled >= 3,
        "only {compiled} of {} compiled",
        sources.len()
    );
}

/// A Rhai string literal of `s` (letters, digits, spaces, quotes, ß).
fn literal(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn expression() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("text".to_string()),
        Just("conn.nick".to_string()),
        Just("conn.room".to_string()),
        Just("conn.route".to_string()),
        Just("conn.id".to_string()),
        Just("conn.seq".to_string()),
        "[a-zA-Z0-9 ß\"\\\\!]{0,6}".prop_map(|s| literal(&s)),
        (0i64..100).prop_map(|i| i.to_string()),
        // Outside the subset:
        Just("text.len()".to_string()),
        Just("conn.state".to_string()),
        Just("undefined_name".to_string()),
    ];
    leaf.prop_recursive(3, 24, 3, |e| {
        prop_oneof![
            e.clone().prop_map(|e| format!("({e}).to_upper()")),
            e.clone().prop_map(|e| format!("({e}).to_lower()")),
            e.clone().prop_map(|e| format!("to_upper({e})")),
            e.clone().prop_map(|e| format!("{e}.to_lower().to_upper()")),
            (e.clone(), e.clone()).prop_map(|(a, b)| format!("({a}) + ({b})")),
            (e.clone(), e.clone()).prop_map(|(a, b)| format!("`${{{a}}}:${{{b}}}`")),
            (e.clone(), e.clone()).prop_map(|(a, b)| format!("#{{ type: {a}, data: {b} }}")),
            // Outside the subset:
            e.clone().prop_map(|e| format!("({e}) * 2")),
            e.clone()
                .prop_map(|e| format!("if text == \"x\" {{ {e} }} else {{ \"y\" }}")),
        ]
    })
}

fn script() -> impl Strategy<Value = String> {
    let statement = expression().prop_flat_map(|e| {
        prop_oneof![
            Just(e.clone()),
            Just(format!("conn.reply({e})")),
            Just(format!("conn.broadcast({e})")),
            Just(format!("conn.broadcast_others({e})")),
            Just(format!("return {e}")),
            Just(String::new()),
        ]
    });
    let hook = prop_oneof![
        Just("on_message(conn, text)"),
        Just("on_join(conn, text)"),
        Just("on_connect(conn)"),
    ];
    (hook, proptest::collection::vec(statement, 0..4)).prop_map(|(hook, body)| {
        let mut src = format!("fn {hook} {{\n    {}\n}}\n", body.join(";\n    "));
        if !hook.starts_with("on_message") {
            src.push_str("fn on_message(conn, text) { }\n");
        }
        src
    })
}

/// Generated scripts, inside the subset and outside it, under default
/// and tight limits: the lowered hooks agree with Rhai, and enough of
/// them are lowered for that to mean something.
#[test]
fn generated_scripts_agree_with_rhai() {
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let strategy = script();
    let (mut compiled, mut lowered) = (0, 0);
    for i in 0..400 {
        let source = strategy.new_tree(&mut runner).unwrap().current();
        let limits = if i % 3 == 2 {
            tight()
        } else {
            ScriptLimits::default()
        };
        if let Some(hooks) = agree(&limits, &source) {
            compiled += 1;
            lowered += usize::from(!hooks.is_empty());
        }
    }
    assert!(
        compiled >= 300,
        "only {compiled} of 400 generated scripts compiled"
    );
    assert!(
        lowered >= 80,
        "only {lowered} of {compiled} had a lowered hook"
    );
}
