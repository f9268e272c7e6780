//! The envelope every event travels in, and its wire format.
//!
//! # Wire format
//!
//! One JSON object per message (the Redis message body, or the `event` field of a stream entry):
//!
//! ```json
//! {"v":1,"id":"5f0c…","channel":"prices:BTC","ts":1764320000000,"source":"bot-1",
//!  "correlation_id":"exec-42","payload":{"price":50234.56}}
//! ```
//!
//! `v` is the format version, `ts` milliseconds since the Unix epoch, `correlation_id` is
//! omitted when there is none, and `payload` is any JSON value. A message that is not such an
//! object (published by `redis-cli`, a Python bot, anything) is still delivered: as
//! [`Payload::Json`] when it is JSON, [`Payload::Raw`] otherwise, with [`Envelope::foreign`] set.

use std::{
    borrow::Cow,
    fmt,
    time::{SystemTime, UNIX_EPOCH},
};

use infra_log::{CorrelationId, current_correlation_id};
use serde::{Deserialize, Serialize};

use crate::Position;

/// The format version this crate writes.
pub const WIRE_VERSION: u32 = 1;

/// An event's ID: 128 bits, written as 32 lowercase hex digits. Copying it allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(u128);

impl EventId {
    /// A new ID: a random per-process prefix and a counter, unique across processes.
    pub fn new() -> Self {
        use std::sync::{
            OnceLock,
            atomic::{AtomicU64, Ordering},
        };
        static PREFIX: OnceLock<u64> = OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let prefix = *PREFIX.get_or_init(|| {
            use std::hash::{BuildHasher, Hasher};
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u32(std::process::id());
            hasher.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
            hasher.finish()
        });
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self((u128::from(prefix) << 64) | u128::from(n))
    }

    /// Reads the 32-hex-digit form.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u128::from_str_radix(text, 16).ok().map(Self))
            .flatten()
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({self})")
    }
}

/// What an event carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// A JSON value (every event published through this crate).
    Json(serde_json::Value),
    /// Bytes that are not JSON, from a foreign publisher, exactly as received.
    Raw(Vec<u8>),
}

/// An event with its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Unique ID, assigned when published.
    pub id: EventId,
    /// The channel it was published on (without the namespace).
    pub channel: String,
    /// When it was published, in milliseconds since the Unix epoch (for foreign messages: when
    /// it was received).
    pub timestamp_ms: u64,
    /// Who published it (the configured source name, e.g. the bot ID).
    pub source: String,
    /// The publisher's correlation ID, restored around the subscriber's handler.
    pub correlation_id: Option<CorrelationId>,
    /// The content.
    pub payload: Payload,
    /// Whether it came from a publisher that does not speak this format.
    pub foreign: bool,
    /// Durable mode: where it is in its stream (replay from here with
    /// [`Start::After`](crate::Start::After)). `None` on ephemeral buses.
    pub position: Option<Position>,
}

/// An event's metadata: everything in its [`Envelope`] but the payload, as
/// [`EventBusExt::subscribe_json`](crate::EventBusExt::subscribe_json) hands it to a handler
/// next to the decoded payload. The fields mean what they mean in [`Envelope`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventMeta {
    /// Unique ID, assigned when published.
    pub id: EventId,
    /// The channel it was published on (without the namespace).
    pub channel: String,
    /// When it was published, in milliseconds since the Unix epoch (see
    /// [`EventMeta::published_at`]).
    pub timestamp_ms: u64,
    /// Who published it.
    pub source: String,
    /// The publisher's correlation ID (also current while the handler runs).
    pub correlation_id: Option<CorrelationId>,
    /// Whether it came from a publisher that does not speak this crate's format.
    pub foreign: bool,
    /// Durable mode: where it is in its stream. `None` on ephemeral buses.
    pub position: Option<Position>,
}

impl EventMeta {
    /// [`EventMeta::timestamp_ms`] as a time.
    pub fn published_at(&self) -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_millis(self.timestamp_ms)
    }
}

/// The wire form as written: borrows everything, so writing copies nothing but the text.
#[derive(Serialize)]
struct WireOut<'a> {
    v: u32,
    #[serde(serialize_with = "display")]
    id: EventId,
    channel: &'a str,
    ts: u64,
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    payload: &'a serde_json::Value,
}

/// The wire form as read, straight from the bytes (strings borrowed unless escaped).
#[derive(Deserialize)]
struct WireIn<'a> {
    v: u32,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow, rename = "channel")]
    _channel: Cow<'a, str>,
    ts: u64,
    #[serde(borrow)]
    source: Cow<'a, str>,
    #[serde(default, borrow)]
    correlation_id: Option<Cow<'a, str>>,
    payload: serde_json::Value,
}

fn display<S: serde::Serializer>(value: &impl fmt::Display, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)).unwrap_or(0)
}

impl Envelope {
    /// A new event from this process: fresh ID, current time and the current correlation ID.
    pub fn new(channel: impl Into<String>, source: impl Into<String>, payload: serde_json::Value) -> Self {
        Self {
            id: EventId::new(),
            channel: channel.into(),
            timestamp_ms: now_ms(),
            source: source.into(),
            correlation_id: current_correlation_id(),
            payload: Payload::Json(payload),
            foreign: false,
            position: None,
        }
    }

    /// The wire form, refused with [`EventsError::PayloadTooLarge`] past
    /// [`MAX_EVENT_BYTES`](crate::MAX_EVENT_BYTES) (what the Redis buses send).
    #[cfg(feature = "redis")]
    pub(crate) fn to_wire_bounded(&self) -> Result<String, crate::EventsError> {
        let wire = self.to_wire();
        if wire.len() > crate::MAX_EVENT_BYTES {
            return Err(crate::EventsError::PayloadTooLarge {
                channel: self.channel.clone(),
                size: wire.len(),
                limit: crate::MAX_EVENT_BYTES,
            });
        }
        Ok(wire)
    }

    /// The wire form. A raw payload (only foreign events have one) is written as a JSON string
    /// of its lossy UTF-8 text.
    pub fn to_wire(&self) -> String {
        let raw;
        let payload = match &self.payload {
            Payload::Json(value) => value,
            Payload::Raw(bytes) => {
                raw = serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned());
                &raw
            }
        };
        let wire = WireOut {
            v: WIRE_VERSION,
            id: self.id,
            channel: &self.channel,
            ts: self.timestamp_ms,
            source: &self.source,
            correlation_id: self.correlation_id.as_ref().map(CorrelationId::as_str),
            payload,
        };
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// Reads a message received on `channel`. Never fails: anything that is not an envelope of
    /// this format becomes a foreign event carrying the message as its payload.
    pub fn from_wire(channel: &str, bytes: &[u8]) -> Self {
        if let Ok(wire) = serde_json::from_slice::<WireIn<'_>>(bytes)
            && wire.v == WIRE_VERSION
        {
            return Self {
                // An ID in another form still makes a valid event, with an ID of ours.
                id: EventId::parse(&wire.id).unwrap_or_default(),
                channel: channel.to_owned(),
                timestamp_ms: wire.ts,
                source: wire.source.into_owned(),
                // An unusable ID from the wire is dropped rather than failing the event.
                correlation_id: wire.correlation_id.and_then(|id| CorrelationId::parse(&id).ok()),
                payload: Payload::Json(wire.payload),
                foreign: false,
                position: None,
            };
        }
        let payload = match serde_json::from_slice::<serde_json::Value>(bytes) {
            Ok(value) => Payload::Json(value),
            Err(_) => Payload::Raw(bytes.to_vec()),
        };
        Self {
            id: EventId::new(),
            channel: channel.to_owned(),
            timestamp_ms: now_ms(),
            source: "foreign".to_owned(),
            correlation_id: None,
            payload,
            foreign: true,
            position: None,
        }
    }

    /// The payload and the metadata, apart (nothing is copied).
    pub fn into_parts(self) -> (Payload, EventMeta) {
        let meta = EventMeta {
            id: self.id,
            channel: self.channel,
            timestamp_ms: self.timestamp_ms,
            source: self.source,
            correlation_id: self.correlation_id,
            foreign: self.foreign,
            position: self.position,
        };
        (self.payload, meta)
    }

    /// The payload decoded as `T`, when it is JSON of that shape.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match &self.payload {
            Payload::Json(value) => T::deserialize(value),
            Payload::Raw(bytes) => serde_json::from_slice(bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use infra_log::with_correlation_id;
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn round_trips_with_the_publishers_correlation_id() {
        let id = CorrelationId::parse("exec-42").unwrap();
        let event =
            with_correlation_id(id.clone(), async { Envelope::new("prices:BTC", "bot-1", json!({"price": 50234.56})) })
                .await;
        assert_eq!(event.correlation_id.as_ref(), Some(&id));
        assert_eq!(event.id.to_string().len(), 32);
        let wire = event.to_wire();
        assert!(wire.starts_with(r#"{"v":1,"id":""#), "{wire}");
        assert!(wire.contains(r#""correlation_id":"exec-42","payload":{"price":50234.56}"#), "{wire}");
        let back = Envelope::from_wire("prices:BTC", wire.as_bytes());
        assert_eq!(back, event);
        assert_eq!(back.decode::<serde_json::Value>().unwrap()["price"], 50234.56);
    }

    #[test]
    fn event_ids_are_unique_and_round_trip_as_hex() {
        let ids: std::collections::HashSet<EventId> = (0..10_000).map(|_| EventId::new()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            let text = id.to_string();
            assert!(text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit()), "{text}");
            assert_eq!(EventId::parse(&text), Some(*id));
        }
        assert_eq!(EventId::parse("not hex"), None);
    }

    #[test]
    fn no_correlation_id_is_omitted_on_the_wire() {
        let event = Envelope::new("c", "s", json!(null));
        assert_eq!(event.correlation_id, None);
        assert!(!event.to_wire().contains("correlation_id"));
        assert_eq!(Envelope::from_wire("c", event.to_wire().as_bytes()), event);
    }

    #[test]
    fn foreign_json_and_non_json_are_delivered_as_they_are() {
        let plain = Envelope::from_wire("prices:BTC", br#"{"price": 1.5}"#);
        assert!(plain.foreign);
        assert_eq!(plain.payload, Payload::Json(json!({"price": 1.5})));
        assert_eq!(plain.channel, "prices:BTC");
        assert_eq!(plain.source, "foreign");

        let text = Envelope::from_wire("alerts", b"BTC crossed 50k");
        assert_eq!(text.payload, Payload::Raw(b"BTC crossed 50k".to_vec()));
        let binary = Envelope::from_wire("alerts", &[0xff, 0x00, 0xfe]);
        assert_eq!(binary.payload, Payload::Raw(vec![0xff, 0x00, 0xfe]));
        assert!(binary.decode::<serde_json::Value>().is_err());

        // Looks like an envelope but is another version, or has a bad correlation ID.
        let other_version =
            Envelope::from_wire("c", br#"{"v":2,"id":"x","channel":"c","ts":1,"source":"s","payload":1}"#);
        assert!(other_version.foreign);
        let bad_id = Envelope::from_wire(
            "c",
            br#"{"v":1,"id":"x","channel":"c","ts":1,"source":"s","correlation_id":"has space","payload":1}"#,
        );
        assert!(!bad_id.foreign);
        assert_eq!(bad_id.correlation_id, None);
        assert_eq!(bad_id.payload, Payload::Json(json!(1)));
    }
}
