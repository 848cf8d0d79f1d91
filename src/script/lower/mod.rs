//! Hooks lowered to Rust. A hook whose body is straight-line code in a small
//! subset of Rhai runs as a tree of Rust operations instead of through
//! Rhai's interpreter: the same actions and the same reply, without the cost
//! of a Rhai call (its runtime state, argument values, resolution and tree
//! walk: `cargo bench --bench hot_paths`).
//!
//! The subset: string and integer literals, string interpolation, the hook's
//! parameters, `conn.nick`, `room`, `route`, `id` and `seq`, `to_upper` and
//! `to_lower` on strings, `+` between strings, object-map literals of these,
//! and as statements `conn.reply(v)`, `conn.broadcast(v)`,
//! `conn.broadcast_others(v)` and `return v`. The shipped `echo.rhai`,
//! `shout.rhai` and `chat.rhai` are in it.
//!
//! Everything else runs in Rhai, as before: a hook with anything outside the
//! subset, every hook of a script that defines a function one of these names
//! would reach (`to_upper`, `to_string`, …), limits too tight for the body,
//! and any call whose strings come near `scripts.limits.max_string_size`
//! (so Rhai's errors stay Rhai's, with its messages). The tests check that
//! the two agree on every shipped script and on generated ones.

use std::borrow::Cow;
use std::sync::Arc;

use rhai::{ASTNode, Dynamic, Engine, Expr, FnCallExpr, ImmutableString, Position, Stmt, AST};

use super::action::Action;
use super::conn::Conn;
use super::hook::Hook;
use crate::payload::Payload;

/// Function names whose meaning the subset assumes: a script that defines
/// any of them is left to Rhai.
const ASSUMED: [&str; 6] = [
    "to_upper",
    "to_lower",
    "to_string",
    "reply",
    "broadcast",
    "broadcast_others",
];

/// One hook, lowered.
#[derive(Debug)]
pub(super) struct Lowered {
    steps: Vec<Step>,
    /// `on_message`: what it returns (a string or a map) is its reply.
    replies: bool,
}

#[derive(Debug)]
enum Step {
    /// An expression statement: the last one's value is what the hook returns.
    Value(Ex),
    /// `conn.reply(v)` and friends; its value is `()`.
    Send(Send, Ex),
    /// An empty statement; its value is `()`.
    Unit,
}

#[derive(Debug, Clone, Copy)]
enum Send {
    Reply,
    Broadcast,
    BroadcastOthers,
}

#[derive(Debug)]
enum Ex {
    Str(ImmutableString),
    Int(i64),
    /// The hook's parameter after `conn` (the text, or the room).
    Arg,
    Prop(Prop),
    Upper(Box<Ex>),
    Lower(Box<Ex>),
    /// `a + b` of two strings, or an interpolation: the parts' text in order.
    Concat(Vec<Ex>),
    /// Entries in the order Rhai's map keeps them (by key).
    Map(Vec<(ImmutableString, Ex)>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Str,
    Int,
    Map,
}

#[derive(Debug, Clone, Copy)]
enum Prop {
    Nick,
    Room,
    Route,
    Id,
    Seq,
}

/// A value while a lowered hook runs.
enum Val<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    /// A map, as the JSON Rhai's serialiser would write for it.
    Json(String),
}

/// What a lowered hook may read.
pub(super) struct Input<'a> {
    pub(super) conn: &'a Conn,
    /// The parameter after `conn`, when it is a string.
    pub(super) arg: Option<&'a str>,
    /// `scripts.limits.max_string_size` (0: none).
    pub(super) max_string: usize,
}

impl Input<'_> {
    /// `None` (run it in Rhai) when a string of `len` bytes comes near the limit.
    fn fits(&self, len: usize) -> Option<()> {
        (self.max_string == 0 || len <= self.max_string).then_some(())
    }
}

impl Lowered {
    /// Run the hook: its actions (and reply) appended to `out`, or `false`
    /// with `out` as it was when Rhai must run it instead.
    pub(super) fn run(&self, input: &Input<'_>, out: &mut Vec<Action>) -> bool {
        let start = out.len();
        if self.run_steps(input, out).is_some() {
            return true;
        }
        out.truncate(start);
        false
    }

    fn run_steps(&self, input: &Input<'_>, out: &mut Vec<Action>) -> Option<()> {
        let mut last = None;
        for step in &self.steps {
            last = match step {
                Step::Value(e) => Some(eval(e, input)?),
                Step::Send(kind, e) => {
                    let payload = payload(eval(e, input)?);
                    out.push(match kind {
                        Send::Reply => Action::Reply(payload),
                        Send::Broadcast => Action::Broadcast(payload),
                        Send::BroadcastOthers => Action::BroadcastOthers(payload),
                    });
                    None
                }
                Step::Unit => None,
            };
        }
        // What a message hook returns, when it is a string or a map, is its
        // reply (integers and `()` send nothing), as the host does for Rhai.
        if let (true, Some(v @ (Val::Str(_) | Val::Json(_)))) = (self.replies, last) {
            out.push(Action::Reply(payload(v)));
        }
        Some(())
    }
}

/// What `to_payload` makes of a value.
fn payload(v: Val<'_>) -> Payload {
    match v {
        Val::Str(s) => Payload::Text(Arc::from(&*s)),
        Val::Int(i) => Payload::Text(i.to_string().into()),
        Val::Json(j) => Payload::Json(j.into()),
    }
}

fn eval<'a>(e: &'a Ex, input: &Input<'a>) -> Option<Val<'a>> {
    Some(match e {
        Ex::Int(i) => Val::Int(*i),
        Ex::Prop(Prop::Id) => Val::Int(input.conn.0.id as i64),
        Ex::Prop(Prop::Seq) => Val::Int(input.conn.0.seq as i64),
        Ex::Map(entries) => {
            let mut json = Vec::with_capacity(64);
            write_map(entries, input, &mut json)?;
            input.fits(json.len())?;
            Val::Json(String::from_utf8(json).ok()?)
        }
        _ => Val::Str(text(e, input)?),
    })
}

/// A string-typed expression's text.
fn text<'a>(e: &'a Ex, input: &Input<'a>) -> Option<Cow<'a, str>> {
    let s = match e {
        Ex::Str(s) => Cow::Borrowed(s.as_str()),
        Ex::Arg => {
            let arg = input.arg?;
            input.fits(arg.len())?;
            Cow::Borrowed(arg)
        }
        Ex::Int(i) => Cow::Owned(i.to_string()),
        Ex::Prop(p) => Cow::Owned(match p {
            Prop::Nick => input.conn.nick().to_string(),
            Prop::Room => input.conn.state().room.to_string(),
            Prop::Route => input.conn.0.route.to_string(),
            Prop::Id => input.conn.0.id.to_string(),
            Prop::Seq => input.conn.0.seq.to_string(),
        }),
        // Rhai's `to_upper` and `to_lower`, to the letter: a string already
        // in that case is returned as it is.
        Ex::Upper(x) => {
            let s = text(x, input)?;
            if s.chars().all(char::is_uppercase) {
                s
            } else {
                Cow::Owned(s.to_uppercase())
            }
        }
        Ex::Lower(x) => {
            let s = text(x, input)?;
            if s.is_empty() || s.chars().all(char::is_lowercase) {
                s
            } else {
                Cow::Owned(s.to_lowercase())
            }
        }
        Ex::Concat(parts) => {
            let mut parts = parts.iter();
            let mut out = match parts.next() {
                Some(first) => text(first, input)?.into_owned(),
                None => String::new(),
            };
            for p in parts {
                out.push_str(&text(p, input)?);
                input.fits(out.len())?;
            }
            Cow::Owned(out)
        }
        Ex::Map(_) => return None,
    };
    input.fits(s.len())?;
    Some(s)
}

/// A map as `serde_json::to_string` writes a Rhai map: keys in order,
/// compact, strings escaped by serde_json.
fn write_map(
    entries: &[(ImmutableString, Ex)],
    input: &Input<'_>,
    out: &mut Vec<u8>,
) -> Option<()> {
    out.push(b'{');
    for (i, (key, value)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, key.as_str()).ok()?;
        out.push(b':');
        match value {
            Ex::Map(inner) => write_map(inner, input, out)?,
            Ex::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
            Ex::Prop(p @ (Prop::Id | Prop::Seq)) => {
                let Val::Int(i) = eval(&Ex::Prop(*p), input)? else {
                    return None;
                };
                out.extend_from_slice(i.to_string().as_bytes());
            }
            other => serde_json::to_writer(&mut *out, &*text(other, input)?).ok()?,
        }
        input.fits(out.len())?;
    }
    out.push(b'}');
    Some(())
}

/// Lower what can be lowered of a compiled script: one entry per hook, in
/// `Hook` order.
pub(super) fn lower(engine: &Engine, ast: &AST) -> [Option<Lowered>; Hook::ALL.len()] {
    let mut lowered: [Option<Lowered>; Hook::ALL.len()] = Default::default();
    // Closures are functions too (`anon$…`), with bodies inside a hook's.
    let plain = ast
        .iter_fn_def()
        .all(|f| !ASSUMED.contains(&f.name.as_str()) && !f.name.contains('$'));
    if !plain || engine.max_call_levels() < 2 {
        return lowered;
    }
    // Every function's body: the top-level statements between its braces (a
    // walk is the only way `internals` gives to a function's statements).
    // Each such statement must fall in exactly one body, or nothing is lowered.
    struct Body {
        hook: Option<Hook>,
        params: Vec<ImmutableString>,
        span: (Position, Position),
        steps: Option<Vec<Step>>,
        /// The statement before was a `return`.
        returned: bool,
    }
    let mut bodies: Vec<Body> = ast
        .iter_fn_def()
        .map(|f| {
            let hook = Hook::ALL
                .iter()
                .copied()
                .find(|h| h.function() == f.name && h.arity() == f.params.len())
                .filter(|h| {
                    matches!(
                        h,
                        Hook::Message | Hook::Join | Hook::Leave | Hook::Connect | Hook::Close
                    )
                })
                .filter(|_| f.this_type.is_none());
            Body {
                hook,
                params: f.params.iter().cloned().collect(),
                span: (f.body.start_position(), f.body.end_position()),
                steps: Some(Vec::new()),
                returned: false,
            }
        })
        .collect();
    let mut nodes = 0u64;
    let mut attributed = true;
    ast.walk(&mut |path: &[ASTNode]| {
        nodes += 1;
        let [ASTNode::Stmt(stmt)] = path else {
            return true;
        };
        let at = stmt.position();
        let mut inside = bodies.iter_mut().filter(|b| within(at, b.span));
        let (Some(body), None) = (inside.next(), inside.next()) else {
            attributed = false;
            return false;
        };
        if body.hook.is_some() {
            if let Some(steps) = &mut body.steps {
                // Nothing after a `return` runs: leave such a body to Rhai.
                let after_return = body.returned;
                match step(stmt, &body.params).filter(|_| !after_return) {
                    Some(s) => steps.push(s),
                    None => body.steps = None,
                }
            }
        }
        body.returned = matches!(stmt, Stmt::Return(..));
        true
    });
    // A straight-line body takes a few operations per node; leave hooks to
    // Rhai when `max_operations` is anywhere near that.
    let ops = engine.max_operations();
    if !attributed || (ops != 0 && ops < 8 * nodes + 64) {
        return lowered;
    }
    let max_map = engine.max_map_size();
    for b in bodies {
        let (Some(hook), Some(steps)) = (b.hook, b.steps) else {
            continue;
        };
        if max_map != 0 && steps.iter().any(|s| s.widest_map() > max_map) {
            continue;
        }
        lowered[hook as usize] = Some(Lowered {
            steps,
            replies: hook == Hook::Message,
        });
    }
    lowered
}

/// Whether `at` lies between the braces of a function body (positions
/// unknown: no).
fn within(at: Position, (start, end): (Position, Position)) -> bool {
    let key = |p: Position| Some((p.line()?, p.position().unwrap_or(0)));
    match (key(at), key(start), key(end)) {
        (Some(a), Some(s), Some(e)) => s <= a && a <= e,
        _ => false,
    }
}

impl Step {
    fn widest_map(&self) -> usize {
        match self {
            Step::Value(e) | Step::Send(_, e) => e.widest_map(),
            Step::Unit => 0,
        }
    }
}

impl Ex {
    fn widest_map(&self) -> usize {
        match self {
            Ex::Map(entries) => entries
                .iter()
                .map(|(_, e)| e.widest_map())
                .max()
                .unwrap_or(0)
                .max(entries.len()),
            Ex::Upper(e) | Ex::Lower(e) => e.widest_map(),
            Ex::Concat(parts) => parts.iter().map(Ex::widest_map).max().unwrap_or(0),
            _ => 0,
        }
    }
}

/// One top-level statement of a hook, lowered.
fn step(stmt: &Stmt, params: &[ImmutableString]) -> Option<Step> {
    match stmt {
        Stmt::Noop(_) => Some(Step::Unit),
        Stmt::Expr(e) => {
            if let Some(send) = send(e, params) {
                return Some(send);
            }
            let (ex, _) = expr(e, params)?;
            Some(Step::Value(ex))
        }
        Stmt::FnCall(call, _) => Some(Step::Value(fn_call(call, params)?.0)),
        // `return v` (not `throw`, which is a return with a flag).
        Stmt::Return(Some(e), flags, _) if flags.is_empty() => {
            Some(Step::Value(expr(e, params)?.0))
        }
        _ => None,
    }
}

/// `conn.reply(v)`, `conn.broadcast(v)`, `conn.broadcast_others(v)`.
fn send(e: &Expr, params: &[ImmutableString]) -> Option<Step> {
    let Expr::Dot(dot, flags, _) = e else {
        return None;
    };
    if flags.intersects(rhai::ASTFlags::NEGATED) || param(&dot.lhs, params)? != 0 {
        return None;
    }
    let Expr::MethodCall(call, _) = &dot.rhs else {
        return None;
    };
    let kind = match call.name.as_str() {
        "reply" => Send::Reply,
        "broadcast" => Send::Broadcast,
        "broadcast_others" => Send::BroadcastOthers,
        _ => return None,
    };
    if call.is_qualified() || call.capture_parent_scope || call.args.len() != 1 {
        return None;
    }
    let (value, _) = expr(&call.args[0], params)?;
    Some(Step::Send(kind, value))
}

/// Which parameter a variable is.
fn param(e: &Expr, params: &[ImmutableString]) -> Option<usize> {
    let Expr::Variable(v, _, _) = e else {
        return None;
    };
    if !v.2.is_empty() {
        return None;
    }
    params.iter().position(|p| *p == v.1)
}

fn expr(e: &Expr, params: &[ImmutableString]) -> Option<(Ex, Ty)> {
    match e {
        Expr::StringConstant(s, _) => Some((Ex::Str(s.clone()), Ty::Str)),
        Expr::IntegerConstant(i, _) => Some((Ex::Int(*i), Ty::Int)),
        Expr::DynamicConstant(d, _) => constant(d),
        Expr::Variable(..) => match param(e, params)? {
            1 => Some((Ex::Arg, Ty::Str)),
            _ => None,
        },
        Expr::InterpolatedString(parts, _) => {
            let mut out = Vec::with_capacity(parts.len());
            for p in parts.iter() {
                let (ex, ty) = expr(p, params)?;
                if ty == Ty::Map {
                    return None;
                }
                out.push(ex);
            }
            Some((Ex::Concat(out), Ty::Str))
        }
        Expr::Map(m, _) => {
            let mut entries = Vec::with_capacity(m.0.len());
            for (key, value) in m.0.iter() {
                entries.push((key.name.clone(), expr(value, params)?.0));
            }
            sort_entries(&mut entries)?;
            Some((Ex::Map(entries), Ty::Map))
        }
        Expr::FnCall(call, _) => fn_call(call, params),
        Expr::Dot(dot, flags, _) => {
            if flags.intersects(rhai::ASTFlags::NEGATED) {
                return None;
            }
            let (base, ty) = match param(&dot.lhs, params) {
                Some(0) => return conn_chain(&dot.rhs, params),
                _ => expr(&dot.lhs, params)?,
            };
            chain(base, ty, &dot.rhs, params)
        }
        _ => None,
    }
}

/// `conn.prop`, and methods on it: `conn.nick.to_upper()`.
fn conn_chain(rhs: &Expr, params: &[ImmutableString]) -> Option<(Ex, Ty)> {
    match rhs {
        Expr::Property(p, _) => prop(&p.2),
        Expr::Dot(dot, flags, _) if !flags.intersects(rhai::ASTFlags::NEGATED) => {
            let Expr::Property(p, _) = &dot.lhs else {
                return None;
            };
            let (base, ty) = prop(&p.2)?;
            chain(base, ty, &dot.rhs, params)
        }
        _ => None,
    }
}

fn prop(name: &str) -> Option<(Ex, Ty)> {
    Some(match name {
        "nick" => (Ex::Prop(Prop::Nick), Ty::Str),
        "room" => (Ex::Prop(Prop::Room), Ty::Str),
        "route" => (Ex::Prop(Prop::Route), Ty::Str),
        "id" => (Ex::Prop(Prop::Id), Ty::Int),
        "seq" => (Ex::Prop(Prop::Seq), Ty::Int),
        _ => return None,
    })
}

/// Methods called on a value: `x.to_upper()`, `x.to_lower().to_upper()`.
fn chain(base: Ex, ty: Ty, rhs: &Expr, params: &[ImmutableString]) -> Option<(Ex, Ty)> {
    match rhs {
        Expr::MethodCall(call, _) => method(base, ty, call),
        Expr::Dot(dot, flags, _) if !flags.intersects(rhai::ASTFlags::NEGATED) => {
            let Expr::MethodCall(call, _) = &dot.lhs else {
                return None;
            };
            let (base, ty) = method(base, ty, call)?;
            chain(base, ty, &dot.rhs, params)
        }
        _ => None,
    }
}

fn method(base: Ex, ty: Ty, call: &FnCallExpr) -> Option<(Ex, Ty)> {
    if !call.args.is_empty() || call.is_qualified() || call.capture_parent_scope {
        return None;
    }
    case(base, ty, &call.name)
}

/// `to_upper` and `to_lower` of a string.
fn case(base: Ex, ty: Ty, name: &str) -> Option<(Ex, Ty)> {
    if ty != Ty::Str {
        return None;
    }
    match name {
        "to_upper" => Some((Ex::Upper(Box::new(base)), Ty::Str)),
        "to_lower" => Some((Ex::Lower(Box::new(base)), Ty::Str)),
        _ => None,
    }
}

/// `a + b` of strings; `to_upper(s)`, `to_lower(s)`.
fn fn_call(call: &FnCallExpr, params: &[ImmutableString]) -> Option<(Ex, Ty)> {
    if call.is_qualified() || call.capture_parent_scope {
        return None;
    }
    match (call.name.as_str(), call.args.as_slice()) {
        ("+", [a, b]) if call.is_operator_call() => {
            let (a, ta) = expr(a, params)?;
            let (b, tb) = expr(b, params)?;
            if ta != Ty::Str || tb != Ty::Str {
                return None;
            }
            Some((Ex::Concat(vec![a, b]), Ty::Str))
        }
        (name @ ("to_upper" | "to_lower"), [a]) if !call.is_operator_call() => {
            let (a, ty) = expr(a, params)?;
            case(a, ty, name)
        }
        _ => None,
    }
}

/// A constant the optimiser folded: strings, integers, and maps of them.
fn constant(d: &Dynamic) -> Option<(Ex, Ty)> {
    if d.is_string() {
        return Some((Ex::Str(d.clone().into_immutable_string().ok()?), Ty::Str));
    }
    if d.is_int() {
        return Some((Ex::Int(d.as_int().ok()?), Ty::Int));
    }
    if d.is_map() {
        let map = d.clone().try_cast::<rhai::Map>()?;
        let mut entries = Vec::with_capacity(map.len());
        for (k, v) in map {
            entries.push((ImmutableString::from(k.as_str()), constant(&v)?.0));
        }
        sort_entries(&mut entries)?;
        return Some((Ex::Map(entries), Ty::Map));
    }
    None
}

/// Rhai's maps keep their keys in order, each once.
fn sort_entries(entries: &mut [(ImmutableString, Ex)]) -> Option<()> {
    entries.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    entries.windows(2).all(|w| w[0].0 != w[1].0).then_some(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config as RunnerConfig, TestRunner};

    use super::super::compile::{build_engine, compile};
    use super::super::host::{Outcome, Script, ScriptHost};
    use super::*;
    use crate::config::ScriptLimits;
    use crate::metrics::Metrics;

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
    fn call(
        host: &ScriptHost,
        script: &Script,
        hook: Hook,
        nick: &str,
        arg: &str,
        v1: bool,
    ) -> String {
        let conn = Conn::new(7, 3, "chat", "chat/lobby", nick);
        let mut out = Vec::new();
        let outcome = match hook {
            Hook::Connect | Hook::Close => {
                host.call(script, hook, &conn, (conn.clone(),), &mut out)
            }
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
}
