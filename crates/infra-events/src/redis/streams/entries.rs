//! Stream entries as Redis returns them, and the events they hold.

use infra_redis::fred::types::Value;

use crate::Envelope;

/// A stream entry: its ID and its field/value pairs.
pub(super) type Entry = (String, Vec<(Value, Value)>);

/// The items of an array reply; nothing for any other reply.
pub(super) fn into_array(value: Value) -> Vec<Value> {
    match value {
        Value::Array(values) => values,
        _ => Vec::new(),
    }
}

/// `[id, [field, value, ...]]`; a deleted entry (fields nil) is skipped.
pub(super) fn entry(value: Value) -> Option<Entry> {
    let mut parts = into_array(value).into_iter();
    let id = parts.next()?.into_string()?;
    let Value::Array(flat) = parts.next()? else { return None };
    let mut fields = Vec::with_capacity(flat.len() / 2);
    let mut flat = flat.into_iter();
    while let (Some(field), Some(value)) = (flat.next(), flat.next()) {
        fields.push((field, value));
    }
    Some((id, fields))
}

/// The bytes of a string reply.
fn bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::String(text) => text.as_bytes().to_vec(),
        Value::Bytes(bytes) => bytes.to_vec(),
        other => other.as_str().map(|text| text.as_bytes().to_vec()).unwrap_or_default(),
    }
}

/// The event of a stream entry: our `event` field, or for entries other clients wrote, their
/// single value or an object of all their fields, as a foreign event.
pub(super) fn envelope(channel: &str, fields: Vec<(Value, Value)>) -> Envelope {
    if let Some((_, value)) = fields.iter().find(|(field, _)| field.as_str().as_deref() == Some("event")) {
        return Envelope::from_wire(channel, &bytes(value));
    }
    if let [(_, value)] = fields.as_slice() {
        return Envelope::from_wire(channel, &bytes(value));
    }
    let object: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|(field, value)| {
            let text = |v: &Value| String::from_utf8_lossy(&bytes(v)).into_owned();
            (text(field), serde_json::Value::String(text(value)))
        })
        .collect();
    Envelope::from_wire(channel, serde_json::Value::Object(object).to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Value {
        Value::String(s.into())
    }

    #[test]
    fn entries_of_other_clients_become_foreign_events() {
        let ours = Envelope::new("c", "bot", serde_json::json!({"n": 1}));
        let decoded = envelope("c", vec![(text("event"), text(&ours.to_wire()))]);
        assert_eq!(decoded, ours);

        let single = envelope("c", vec![(text("price"), text("42.5"))]);
        assert!(single.foreign);
        assert_eq!(single.decode::<f64>().unwrap(), 42.5);

        let many = envelope("c", vec![(text("a"), text("1")), (text("b"), text("x y"))]);
        assert!(many.foreign);
        assert_eq!(many.decode::<serde_json::Value>().unwrap(), serde_json::json!({"a": "1", "b": "x y"}));
    }

    #[test]
    fn deleted_entries_are_skipped() {
        assert_eq!(entry(Value::Array(vec![text("1-0"), Value::Null])), None);
        let parsed = entry(Value::Array(vec![text("1-0"), Value::Array(vec![text("event"), text("{}")])]));
        assert_eq!(parsed.map(|(id, fields)| (id, fields.len())), Some(("1-0".to_owned(), 1)));
    }
}
