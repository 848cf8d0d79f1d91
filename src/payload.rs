//! A message on its way out, kept in the form it was made in: each wire
//! encodes it as its clients need it (raw clients get it as a plain frame,
//! roomcast.v1 clients as the `data` of a JSON event).

use std::sync::Arc;

/// What a script (or the HTTP API) sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Text: a raw text frame; a JSON string in v1 events.
    Text(Arc<str>),
    /// Bytes: a raw binary frame; an array of numbers in v1 events.
    Binary(Arc<[u8]>),
    /// A JSON value (a script's map or array, or API data): a raw text frame
    /// holding the JSON; the value itself in v1 events.
    Json(Arc<str>),
}

impl Payload {
    /// The JSON value v1 clients receive as `data`.
    pub fn json(&self) -> String {
        match self {
            Payload::Text(s) => serde_json::to_string(&**s).expect("strings serialise"),
            Payload::Binary(b) => serde_json::to_string(&**b).expect("bytes serialise"),
            Payload::Json(j) => j.to_string(),
        }
    }

    /// The same, as a value.
    pub fn value(&self) -> serde_json::Value {
        match self {
            Payload::Text(s) => serde_json::Value::from(&**s),
            Payload::Binary(b) => serde_json::Value::from(b.to_vec()),
            Payload::Json(j) => serde_json::from_str(j).unwrap_or(serde_json::Value::Null),
        }
    }

    /// Payload size in bytes (what the message-size limit applies to).
    pub fn len(&self) -> usize {
        match self {
            Payload::Text(s) | Payload::Json(s) => s.len(),
            Payload::Binary(b) => b.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A payload from a JSON value received from a client or the API: strings
    /// stay text (so raw clients get the bare string), anything else is JSON.
    pub fn from_json(value: &serde_json::Value) -> Payload {
        match value {
            serde_json::Value::String(s) => Payload::Text(s.as_str().into()),
            other => Payload::Json(other.to_string().into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_json() {
        let t = Payload::Text("hé \"x\"".into());
        assert_eq!(t.json(), r#""hé \"x\"""#);
        assert_eq!(t.value(), serde_json::json!("hé \"x\""));
        let b = Payload::Binary(vec![1u8, 2].into());
        assert_eq!(b.json(), "[1,2]");
        assert_eq!(b.value(), serde_json::json!([1, 2]));
        let j = Payload::from_json(&serde_json::json!({"a": 1}));
        assert_eq!(j.json(), r#"{"a":1}"#);
        assert_eq!(j.value(), serde_json::json!({"a": 1}));
        assert_eq!(
            Payload::from_json(&serde_json::json!("s")),
            Payload::Text("s".into())
        );
    }
}
