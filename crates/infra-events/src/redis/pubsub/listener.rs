//! The listener task: routes what the subscriber connection receives to local subscriptions.

use std::sync::Weak;

use infra_redis::fred::{
    prelude::EventInterface,
    types::{Message, MessageKind, Value},
};
use tokio::sync::{broadcast::error::RecvError, watch};

use super::Inner;
use crate::{Envelope, memory::Route};

/// What the listener reads: fred's messages and its reconnection notices.
pub(super) type Receivers = (
    tokio::sync::broadcast::Receiver<Message>,
    tokio::sync::broadcast::Receiver<infra_redis::fred::types::config::Server>,
);

/// Runs the listener and starts it again if it panics, so a bug there cannot silently end every
/// subscription of the bus. What it held and what arrived before the new receivers existed is
/// lost: every subscription is told of a gap. Ends once `stop` says so (or its sender is gone),
/// after routing what fred had already received.
pub(super) async fn supervise(bus: Weak<Inner>, mut receivers: Receivers, stop: watch::Receiver<bool>) {
    loop {
        match tokio::spawn(listen(bus.clone(), receivers, stop.clone())).await {
            Err(error) if error.is_panic() => {
                let Some(inner) = bus.upgrade() else { return };
                receivers = (inner.subscriber.client().message_rx(), inner.subscriber.client().reconnect_rx());
                inner.local.note_gap();
                tracing::error!(target: "infra_events", "redis listener panicked: restarted, messages may have been lost");
            }
            // Closed, the bus was dropped, fred closed its channels, or the runtime is shutting
            // down.
            _ => return,
        }
    }
}

/// Receives every message of the subscriber connection and routes it to local subscriptions.
async fn listen(bus: Weak<Inner>, (mut messages, mut reconnects): Receivers, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            biased;
            () = stopped(&mut stop) => {
                let Some(inner) = bus.upgrade() else { return };
                while let Ok(message) = messages.try_recv() {
                    route(&inner, message).await;
                }
                return;
            }
            message = messages.recv() => {
                let Some(inner) = bus.upgrade() else { return };
                match message {
                    Ok(message) => route(&inner, message).await,
                    Err(RecvError::Lagged(lost)) => {
                        inner.local.note_lost(lost);
                        tracing::warn!(target: "infra_events", lost, "redis subscriber buffer overflowed: messages lost");
                    }
                    Err(RecvError::Closed) => return,
                }
            }
            reconnect = reconnects.recv() => {
                let Some(inner) = bus.upgrade() else { return };
                match reconnect {
                    Ok(_) | Err(RecvError::Lagged(_)) => {
                        inner.local.note_gap();
                        tracing::warn!(target: "infra_events", "redis subscriber reconnected: messages published meanwhile are lost");
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        }
    }
}

/// Returns once `stop` is true, or its sender (the bus) is gone.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Hands one message to the local subscriptions of its kind.
async fn route(inner: &Inner, message: Message) {
    #[cfg(test)]
    if tests::PANIC_IN_LISTENER.swap(false, std::sync::atomic::Ordering::SeqCst) {
        panic!("listener panic injected by a test");
    }
    let Some(channel) = message.channel.strip_prefix(inner.prefix.as_str()) else { return };
    let bytes: std::borrow::Cow<'_, [u8]> = match &message.value {
        Value::String(text) => text.as_bytes().into(),
        Value::Bytes(bytes) => bytes.as_ref().into(),
        other => other.as_str().map(|text| text.as_bytes().to_vec()).unwrap_or_default().into(),
    };
    let event = Envelope::from_wire(channel, &bytes);
    let route = match message.kind {
        MessageKind::PMessage => Route::Patterns,
        _ => Route::Channels,
    };
    inner.local.route(event, route).await;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use futures::StreamExt;
    use infra_testkit::RedisServer;
    use serde_json::json;

    use std::time::Duration;

    use infra_config::RedisUrl;

    use crate::{EventBus, SubscribeOptions, Topic, redis::RedisBus};

    /// Makes the listener panic on the next message it receives.
    pub(super) static PANIC_IN_LISTENER: AtomicBool = AtomicBool::new(false);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicked_listener_is_restarted_and_the_gap_reported() {
        let server = RedisServer::start().unwrap();
        let url = RedisUrl::parse(&server.url()).unwrap();
        let timeout = Duration::from_secs(5);
        let (publisher, subscriber) =
            (RedisBus::new(&url, "t", "pub", timeout).unwrap(), RedisBus::new(&url, "t", "sub", timeout).unwrap());
        let mut ticks = subscriber.stream(Topic::Channel("ticks".into()), SubscribeOptions::default()).await.unwrap();

        PANIC_IN_LISTENER.store(true, Ordering::SeqCst);
        publisher.publish("ticks", json!(0)).await.unwrap();
        // The restarted listener takes new receivers: publish until one arrives.
        let received = async {
            for n in 1.. {
                publisher.publish("ticks", json!(n)).await.unwrap();
                if let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(100), ticks.next()).await {
                    return event;
                }
            }
            unreachable!()
        };
        let event = tokio::time::timeout(timeout, received).await.expect("the listener never came back");
        assert_ne!(event.decode::<i64>().unwrap(), 0, "the message being handled at the panic is lost");
        assert!(!PANIC_IN_LISTENER.load(Ordering::SeqCst), "the injected panic happened");
        assert_eq!(ticks.stats().gaps(), 1);
    }
}
