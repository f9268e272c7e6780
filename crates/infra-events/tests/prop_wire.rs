//! Property tests of the event wire format (`Envelope::from_wire`), which reads bytes from any
//! client of the channel or stream: it never panics, anything that is not one of our envelopes
//! is a foreign event carrying the bytes (as JSON when they are JSON), and our own envelopes
//! round trip exactly. Modest case counts: this file runs in a few seconds.

use infra_events::{Envelope, Payload};
use proptest::{prelude::*, test_runner::Config};
use serde_json::{Value, json};

fn config() -> Config {
    Config { cases: 512, failure_persistence: None, ..Config::default() }
}

/// Any JSON value (finite numbers, which JSON text can carry), a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Bytes shaped like an envelope, with fields missing, of the wrong type or of another version.
fn envelope_like() -> impl Strategy<Value = Vec<u8>> {
    let field = |name: &'static str| (Just(name), prop::option::of(json_value()));
    (
        prop_oneof![Just(json!(1)), json_value()],
        field("id"),
        field("channel"),
        field("ts"),
        field("source"),
        field("correlation_id"),
        field("payload"),
    )
        .prop_map(|(v, id, channel, ts, source, correlation, payload)| {
            let mut object = serde_json::Map::new();
            object.insert("v".into(), v);
            for (name, value) in [id, channel, ts, source, correlation, payload] {
                if let Some(value) = value {
                    object.insert(name.into(), value);
                }
            }
            serde_json::to_vec(&Value::Object(object)).unwrap()
        })
}

#[test]
fn arbitrary_bytes_are_read_without_panicking_and_kept_as_they_came() {
    proptest!(config(), |(channel in any::<String>(), bytes in prop::collection::vec(any::<u8>(), 0..256))| {
        let event = Envelope::from_wire(&channel, &bytes);
        prop_assert_eq!(&event.channel, &channel);
        if event.foreign {
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(value) => prop_assert_eq!(&event.payload, &Payload::Json(value)),
                Err(_) => prop_assert_eq!(&event.payload, &Payload::Raw(bytes.clone())),
            }
            prop_assert_eq!(event.source.as_str(), "foreign");
        }
        // Re-encoding a foreign event never fails either.
        let _ = Envelope::from_wire(&channel, event.to_wire().as_bytes());
    });
}

#[test]
fn envelope_shaped_json_is_ours_or_foreign_never_an_error() {
    proptest!(config(), |(bytes in envelope_like())| {
        let event = Envelope::from_wire("c", &bytes);
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        if event.foreign {
            prop_assert_eq!(event.payload, Payload::Json(value));
        } else {
            // Ours: version 1 with every required field of the right type.
            prop_assert_eq!(&value["v"], &json!(1));
            prop_assert_eq!(Some(event.source.as_str()), value["source"].as_str());
            prop_assert_eq!(event.payload, Payload::Json(value["payload"].clone()));
        }
    });
}

#[test]
fn our_envelopes_round_trip() {
    proptest!(config(), |(channel in any::<String>(), source in any::<String>(), payload in json_value())| {
        let sent = Envelope::new(channel.as_str(), source, payload);
        let received = Envelope::from_wire(&channel, sent.to_wire().as_bytes());
        // Exactly, floats included (serde_json's `float_roundtrip`: its default parser may read
        // a float of its own printer 1 or 2 ulps off, e.g. 9.909887137637901e48).
        prop_assert_eq!(received, sent);
    });
}

#[test]
fn truncated_envelopes_are_foreign_raw_events() {
    proptest!(config(), |(payload in json_value(), cut in any::<prop::sample::Index>())| {
        let wire = Envelope::new("c", "bot", payload).to_wire();
        let cut = cut.index(wire.len());
        let event = Envelope::from_wire("c", &wire.as_bytes()[..cut]);
        prop_assert!(event.foreign);
        if let Payload::Raw(bytes) = &event.payload {
            prop_assert_eq!(bytes.as_slice(), &wire.as_bytes()[..cut]);
        }
    });
}
