//! Prices and fills flowing through the configured bus: a typed pattern subscription, a handler
//! that fails now and then without stopping anything, the publisher's correlation ID in the
//! handler, and a stream for pulling. Memory by default; Redis pub/sub with `INFRA_ENV=staging`; Redis
//! Streams with `INFRA_EVENTS__MODE=durable` as well, where patterns are refused (the example
//! shows the error and subscribes to each channel instead).
//!
//! ```sh
//! cargo run -p infra-events --example event_bus_demo
//! INFRA_ENV=staging INFRA_EVENTS__MODE=durable cargo run -p infra-events --all-features --example event_bus_demo
//! ```

#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use futures::StreamExt;
use infra_config::Config;
use infra_events::{EventBus, EventBusExt, EventMeta, EventsError, Pattern, SubscribeOptions, Topic};
use infra_log::{CorrelationId, current_correlation_id, with_correlation_id};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Debug, Serialize, Deserialize)]
struct Price {
    price: f64,
}

/// Every price, on any symbol; rejects prices it considers stale (an error, not a crash).
async fn on_price(price: Price, meta: EventMeta) -> Result<(), String> {
    if price.price <= 0.0 {
        return Err(format!("bad price on {}", meta.channel));
    }
    println!("[{}] {} = {} (correlation {:?})", meta.id, meta.channel, price.price, current_correlation_id());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::load()?;
    let bus = infra_events::from_config(&config.events, "bot-1")?;
    // Fails here, within the connect timeout, when Redis is unreachable.
    bus.connect().await?;
    println!("bus: {bus:?}, ping {:?}", bus.ping().await?);

    let mut prices = match bus.subscribe_json(Pattern::parse("prices:*")?, on_price).await {
        Ok(subscription) => vec![subscription],
        Err(error @ EventsError::PatternNotDurable { .. }) => {
            println!("{error}");
            let mut each = Vec::new();
            for symbol in ["prices:BTC", "prices:ETH"] {
                each.push(bus.subscribe_json(symbol, on_price).await?);
            }
            each
        }
        Err(other) => return Err(other.into()),
    };

    // Fills, pulled as a stream.
    let mut fills = bus.stream(Topic::Channel("fills".into()), SubscribeOptions::default()).await?;

    let execution = CorrelationId::parse("exec-2026-001")?;
    with_correlation_id(execution, async {
        bus.publish_json("prices:BTC", &Price { price: 50234.56 }).await?;
        bus.publish_json("prices:ETH", &Price { price: -1.0 }).await?; // handled as an error, counted
        bus.publish_json("prices:ETH", &Price { price: 3012.5 }).await?;
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
            "prices: {} received, {} handled, {} failed (last: {:?}), {} dropped",
            stats.received(),
            stats.handled(),
            stats.errors(),
            stats.last_error(),
            stats.dropped()
        );
    }
    bus.close().await?;
    Ok(())
}
