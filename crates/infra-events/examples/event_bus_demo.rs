//! Prices and fills flowing through the configured bus: a pattern subscription, a handler that
//! fails now and then without stopping anything, the publisher's correlation ID in the handler,
//! and a stream for pulling. Memory by default; Redis pub/sub with `INFRA_ENV=staging`; Redis
//! Streams with `INFRA_EVENTS__MODE=durable` as well, where patterns are refused (the example
//! shows the error and subscribes to each channel instead).
//!
//! ```sh
//! cargo run -p infra-events --example event_bus_demo
//! INFRA_ENV=staging INFRA_EVENTS__MODE=durable cargo run -p infra-events --all-features --example event_bus_demo
//! ```

#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use std::sync::Arc;

use futures::StreamExt;
use infra_config::Config;
use infra_events::{BoxError, Envelope, EventsError, Handler, Pattern, SubscribeOptions, Topic};
use infra_log::{CorrelationId, current_correlation_id, with_correlation_id};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::load()?;
    let bus = infra_events::from_config(&config.events, "bot-1")?;
    println!("bus: {bus:?}");

    // Every price, on any symbol; rejects prices it considers stale (an error, not a crash).
    let on_price: Arc<dyn Handler> = Arc::new(|event: Envelope| async move {
        let price: f64 = event.decode::<serde_json::Value>()?["price"].as_f64().unwrap_or_default();
        if price <= 0.0 {
            return Err::<(), BoxError>(format!("bad price on {}", event.channel).into());
        }
        println!("[{}] {} = {price} (correlation {:?})", event.id, event.channel, current_correlation_id());
        Ok(())
    });
    let all_prices = Topic::Pattern(Pattern::new("prices:*"));
    let mut prices = match bus.subscribe(all_prices, on_price.clone(), SubscribeOptions::default()).await {
        Ok(subscription) => vec![subscription],
        Err(error @ EventsError::PatternNotDurable { .. }) => {
            println!("{error}");
            let mut each = Vec::new();
            for symbol in ["prices:BTC", "prices:ETH"] {
                let topic = Topic::Channel(symbol.to_owned());
                each.push(bus.subscribe(topic, on_price.clone(), SubscribeOptions::default()).await?);
            }
            each
        }
        Err(other) => return Err(other.into()),
    };

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

    for subscription in prices.drain(..) {
        let stats = subscription.unsubscribe().await;
        println!(
            "prices: {} received, {} handled, {} failed, {} dropped",
            stats.received(),
            stats.handled(),
            stats.errors(),
            stats.dropped()
        );
    }
    Ok(())
}
