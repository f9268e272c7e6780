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

/// A stream entry as a read or a claim returns it.
#[derive(Debug, PartialEq)]
pub(super) enum Item {
    /// The entry, with its fields.
    Entry(Entry),
    /// An entry that no longer exists (trimmed or deleted) but was still pending: its ID.
    Deleted(String),
}

/// `[id, [field, value, ...]]`, or `[id, nil]` for an entry deleted while pending (Redis 6.2's
/// `XAUTOCLAIM`, `XREADGROUP` of pending entries).
pub(super) fn item(value: Value) -> Option<Item> {
    let mut parts = into_array(value).into_iter();
    let id = parts.next()?.into_string()?;
    let Some(Value::Array(flat)) = parts.next() else { return Some(Item::Deleted(id)) };
    let mut fields = Vec::with_capacity(flat.len() / 2);
    let mut flat = flat.into_iter();
    while let (Some(field), Some(value)) = (flat.next(), flat.next()) {
        fields.push((field, value));
    }
    Some(Item::Entry((id, fields)))
}

/// A stream entry ID, ordered as Redis orders them (`<milliseconds>-<sequence>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct StreamId {
    millis: u64,
    sequence: u64,
}

impl StreamId {
    /// Parses `<milliseconds>-<sequence>` (or `<milliseconds>`).
    pub(super) fn parse(text: &str) -> Option<Self> {
        let (millis, sequence) = text.split_once('-').unwrap_or((text, "0"));
        Some(Self { millis: millis.parse().ok()?, sequence: sequence.parse().ok()? })
    }
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
    fn deleted_entries_are_told_apart() {
        assert_eq!(item(Value::Array(vec![text("1-0"), Value::Null])), Some(Item::Deleted("1-0".to_owned())));
        let parsed = item(Value::Array(vec![text("1-0"), Value::Array(vec![text("event"), text("{}")])]));
        let Some(Item::Entry((id, fields))) = parsed else { panic!("an entry: {parsed:?}") };
        assert_eq!((id.as_str(), fields.len()), ("1-0", 1));
        assert_eq!(item(Value::Null), None);
    }

    #[test]
    fn stream_ids_order_numerically() {
        let id = |text| StreamId::parse(text).unwrap();
        assert!(id("9-0") < id("10-0"));
        assert!(id("10-2") < id("10-11"));
        assert_eq!(id("7"), id("7-0"));
        assert_eq!(StreamId::parse("x-1"), None);
    }
}
