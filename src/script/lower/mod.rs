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

use rhai::{ASTNode, Dynamic, Engine, Expr, FnCallExpr, ImmutableString, Position, Stmt, AST};

use super::hook::Hook;

mod run;

pub(super) use run::Input;

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
                Some(0) => return conn_chain(&dot.rhs),
                _ => expr(&dot.lhs, params)?,
            };
            chain(base, ty, &dot.rhs)
        }
        _ => None,
    }
}

/// `conn.prop`, and methods on it: `conn.nick.to_upper()`.
fn conn_chain(rhs: &Expr) -> Option<(Ex, Ty)> {
    match rhs {
        Expr::Property(p, _) => prop(&p.2),
        Expr::Dot(dot, flags, _) if !flags.intersects(rhai::ASTFlags::NEGATED) => {
            let Expr::Property(p, _) = &dot.lhs else {
                return None;
            };
            let (base, ty) = prop(&p.2)?;
            chain(base, ty, &dot.rhs)
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
fn chain(base: Ex, ty: Ty, rhs: &Expr) -> Option<(Ex, Ty)> {
    match rhs {
        Expr::MethodCall(call, _) => method(base, ty, call),
        Expr::Dot(dot, flags, _) if !flags.intersects(rhai::ASTFlags::NEGATED) => {
            let Expr::MethodCall(call, _) = &dot.lhs else {
                return None;
            };
            let (base, ty) = method(base, ty, call)?;
            chain(base, ty, &dot.rhs)
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
mod tests;
