//! Prices and fills flowing through the in-memory bus: a pattern subscription, a handler that
//! fails now and then without stopping anything, the publisher's correlation ID in the handler,
//! and a stream for pulling. (The Redis backends are not built yet.)
//!
//! ```sh
//! cargo run -p infra-events --example event_bus_demo
//! ```

#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use std::sync::Arc;

use futures::StreamExt;
use infra_events::{BoxError, Envelope, EventBus, Pattern, SubscribeOptions, Topic, memory::MemoryBus};
use infra_log::{CorrelationId, current_correlation_id, with_correlation_id};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bus: Arc<dyn EventBus> = Arc::new(MemoryBus::new("bot-1"));

    // Every price, on any symbol; rejects prices it considers stale (an error, not a crash).
    let prices = bus
        .subscribe(
            Topic::Pattern(Pattern::new("prices:*")),
            Arc::new(|event: Envelope| async move {
                let price: f64 = event.decode::<serde_json::Value>()?["price"].as_f64().unwrap_or_default();
                if price <= 0.0 {
                    return Err::<(), BoxError>(format!("bad price on {}", event.channel).into());
                }
                println!("[{}] {} = {price} (correlation {:?})", event.id, event.channel, current_correlation_id());
                Ok(())
            }),
            SubscribeOptions::default(),
        )
        .await?;

    // Fills, pulled as a stream.
    let mut fills = bus.stream(Topic::Channel("fills".into()), SubscribeOptions::default()).await?;

    let execution = CorrelationId::parse("exec-2026-001")?;
    with_correlation_id(execution, async {
        bus.publish("prices:BTC", json!({"price": 50234.56})).await?;
        bus.publish("prices:ETH", json!({"price": -1.0})).await?; // handled as an error, counted
        bus.publish("prices:ETH", json!({"price": 3012.5})).await?;
        bus.publish("fills", json!({"order": 981234, "qty": 2})).await?;
        Ok::<_, infra_events::EventsError>(())
    })
    .await?;

    let fill = fills.next().await.expect("a fill");
    println!(
        "fill {} from {} with correlation {:?}",
        fill.decode::<serde_json::Value>()?,
        fill.source,
        fill.correlation_id
    );

    let stats = prices.unsubscribe().await;
    println!(
        "prices: {} received, {} handled, {} failed, {} dropped",
        stats.received(),
        stats.handled(),
        stats.errors(),
        stats.dropped()
    );
    Ok(())
}
