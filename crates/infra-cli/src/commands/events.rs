//! `infractl events ...`: publish and subscribe through the facade's resilient bus.

use std::time::Duration;

use futures::StreamExt;
use infra_facade::{
    events::{Envelope, EventBus, EventStream, Pattern, Payload, Topic},
    log::{CorrelationId, with_correlation_id},
};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::{
    cli::EventsCommand,
    commands::{Context, state::not_json},
    error::CliError,
    output::compact,
    setup::Connect,
};

/// Runs one `events` command.
pub(crate) async fn run(context: &Context, command: EventsCommand) -> Result<(), CliError> {
    match command {
        EventsCommand::Publish { channel, json, correlation_id } => {
            let payload: Value = serde_json::from_str(&json).map_err(|error| not_json(&json, &error))?;
            let correlation_id = correlation_id
                .map(|id| CorrelationId::parse(&id).map_err(|error| CliError::Usage(error.to_string())))
                .transpose()?;
            context
                .with_infrastructure(Connect::Now, async move |infra| {
                    let publish = infra.events().publish(&channel, payload);
                    let published = match correlation_id {
                        Some(id) => with_correlation_id(id, publish).await,
                        None => publish.await,
                    };
                    let published =
                        published.map_err(|e| CliError::runtime(format!("events publish on `{channel}`"), &e))?;
                    let record = json!({
                        "channel": channel,
                        "id": published.id.to_string(),
                        "redis_receivers": published.redis_receivers,
                        "position": published.position.as_ref().map(|p| p.as_str().to_owned()),
                    });
                    context.printer.emit(&record, || match published.redis_receivers {
                        Some(receivers) => format!("published {} on `{channel}` ({receivers} receivers)", published.id),
                        None => format!("published {} on `{channel}`", published.id),
                    })
                })
                .await
        }
        EventsCommand::Subscribe { pattern, count, timeout } => {
            let topic = topic(&pattern)?;
            context
                .with_infrastructure(Connect::Now, async move |infra| {
                    let stream = infra
                        .events()
                        .stream(topic, Default::default())
                        .await
                        .map_err(|e| CliError::runtime(format!("events subscribe `{pattern}`"), &e))?;
                    let config = &context.loaded.config.events;
                    eprintln!(
                        "infractl: subscribed to `{pattern}` (namespace `{}`, {} backend)",
                        config.namespace,
                        config.backend.as_str()
                    );
                    listen(stream, count, timeout, "events", |event| {
                        let record = event_record(&event);
                        context.printer.emit(&record, || event_text(&record))?;
                        Ok(true)
                    })
                    .await
                })
                .await
        }
    }
}

/// A channel name, or a glob pattern (checked for likely typos).
fn topic(text: &str) -> Result<Topic, CliError> {
    let pattern = Pattern::parse(text).map_err(|error| CliError::Usage(error.to_string()))?;
    Ok(if pattern.is_literal() { Topic::Channel(text.to_owned()) } else { Topic::Pattern(pattern) })
}

/// Hands every event of `stream` to `on_event` (which says whether it counts towards `count`)
/// until `count` events counted, `timeout` passed, or Ctrl-C. A timeout before `count` is a
/// runtime failure; without `count` it is the normal end.
pub(crate) async fn listen(
    mut stream: EventStream,
    count: Option<u64>,
    timeout: Option<Duration>,
    what: &str,
    mut on_event: impl FnMut(Envelope) -> Result<bool, CliError>,
) -> Result<(), CliError> {
    let deadline = timeout.map(|timeout| Instant::now() + timeout);
    let mut counted = 0;
    while count.is_none_or(|count| counted < count) {
        let expired = async {
            match deadline {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            event = stream.next() => event,
            () = expired => {
                return match (count, timeout) {
                    (Some(count), Some(timeout)) => Err(CliError::Runtime(format!(
                        "timed out after {timeout:?}: {counted} of {count} {what} received"
                    ))),
                    _ => Ok(()),
                };
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let Some(event) = event else {
            return Err(CliError::Runtime(format!("the subscription ended after {counted} {what}")));
        };
        if on_event(event)? {
            counted += 1;
        }
    }
    Ok(())
}

/// One event as printed: at least its channel, data and correlation ID. A payload that is not
/// JSON (a foreign publisher's) is shown as its text, with `raw` set.
fn event_record(event: &Envelope) -> Value {
    let (data, raw) = match &event.payload {
        Payload::Json(value) => (value.clone(), false),
        Payload::Raw(bytes) => (Value::String(String::from_utf8_lossy(bytes).into_owned()), true),
    };
    json!({
        "channel": event.channel,
        "data": data,
        "correlation_id": event.correlation_id.as_ref().map(|id| id.as_str().to_owned()),
        "id": event.id.to_string(),
        "source": event.source,
        "timestamp_ms": event.timestamp_ms,
        "foreign": event.foreign,
        "raw": raw,
        "position": event.position.as_ref().map(|p| p.as_str().to_owned()),
    })
}

fn event_text(record: &Value) -> String {
    let data = match (&record["data"], record["raw"].as_bool()) {
        (Value::String(text), Some(true)) => text.clone(),
        (data, _) => compact(data),
    };
    let correlation = record["correlation_id"].as_str().map(|id| format!(" correlation_id={id}")).unwrap_or_default();
    format!(
        "{} {data}  (source={}{correlation})",
        record["channel"].as_str().unwrap_or_default(),
        record["source"].as_str().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_bytes_are_shown_raw_and_json_as_json() {
        let raw = Envelope::from_wire("orders", b"not json \xff");
        let record = event_record(&raw);
        assert_eq!((record["raw"].as_bool(), record["foreign"].as_bool()), (Some(true), Some(true)));
        assert_eq!(record["data"], "not json \u{fffd}");
        assert_eq!(event_text(&record), "orders not json \u{fffd}  (source=foreign)");
        let ours = Envelope::new("orders", "bot-1", json!({"qty": 1}));
        let record = event_record(&ours);
        assert_eq!((record["data"].clone(), record["raw"].as_bool()), (json!({"qty": 1}), Some(false)));
        assert!(record.get("correlation_id").is_some());
    }

    #[test]
    fn literal_names_are_channels_and_typos_are_usage_errors() {
        assert_eq!(topic("orders").unwrap(), Topic::Channel("orders".into()));
        assert!(matches!(topic("orders:*").unwrap(), Topic::Pattern(_)));
        assert!(matches!(topic("orders:[A-Z"), Err(CliError::Usage(_))));
    }
}
