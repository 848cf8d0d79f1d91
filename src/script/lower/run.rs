//! Running a lowered hook: its steps evaluated over the call's `conn` and
//! text, with every string it makes held to `max_string_size`.

use std::borrow::Cow;
use std::sync::Arc;

use rhai::ImmutableString;

use super::{Ex, Lowered, Prop, Send, Step};
use crate::payload::Payload;
use crate::script::action::Action;
use crate::script::conn::Conn;

/// A value while a lowered hook runs.
enum Val<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    /// A map, as the JSON Rhai's serialiser would write for it.
    Json(String),
}

/// What a lowered hook may read.
pub(in crate::script) struct Input<'a> {
    pub(in crate::script) conn: &'a Conn,
    /// The parameter after `conn`, when it is a string.
    pub(in crate::script) arg: Option<&'a str>,
    /// `scripts.limits.max_string_size` (0: none).
    pub(in crate::script) max_string: usize,
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
    pub(in crate::script) fn run(&self, input: &Input<'_>, out: &mut Vec<Action>) -> bool {
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
            // Nested maps are written in place.
            Ex::Map(inner) => write_map(inner, input, out)?,
            other => match eval(other, input)? {
                Val::Int(i) => out.extend_from_slice(i.to_string().as_bytes()),
                Val::Str(s) => serde_json::to_writer(&mut *out, &*s).ok()?,
                Val::Json(j) => out.extend_from_slice(j.as_bytes()),
            },
        }
        input.fits(out.len())?;
    }
    out.push(b'}');
    Some(())
}
