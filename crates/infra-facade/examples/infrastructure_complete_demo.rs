//! Every component together, through the facade: one call assembles the state store, the
//! event bus, the resilience policies and breakers, the emergency controller, health and
//! logging; `close()` shuts them down in order.
//!
//! ```sh
//! cargo run --example infrastructure_complete_demo            # memory backends
//! INFRA_ENV=staging cargo run -p infra-facade --features redis --example infrastructure_complete_demo
//! ```
//!
//! What it does goes to stdout; the infrastructure's own logs go to stderr.

#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use std::{
    error::Error,
    io,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use infra_facade::{
    BREAKER_CHANNEL,
    config::Jitter,
    prelude::*,
    resilience::{Backoff, RetryEvent},
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Fill {
    symbol: String,
    qty: f64,
    price: f64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    // Development (memory backends) unless INFRA_ENV names another environment.
    let environment = std::env::var("INFRA_ENV").unwrap_or_else(|_| "development".to_owned());
    let mut config = Config::load_env(&environment)?;
    config.emergency.auto_halt_on_limit = true;
    let infra = Infrastructure::builder(config).log_writer(io::stderr()).build().await?;
    let limit = infra.config().emergency.daily_loss_limit;
    println!(
        "0. assembled `{environment}`: state on {}, events on {}, bot `{}`, daily loss limit {limit}",
        infra.state().backend(),
        infra.events().backend(),
        infra.emergency().bot_id()
    );

    println!("1. state, behind the `state` breaker and the retry policy");
    let state = infra.state();
    state.set_json("demo:position:BTC", &0.5, None).await?;
    state.set_json("demo:session", &serde_json::json!({"user": "alice"}), Some(Duration::from_secs(60))).await?;
    let orders = state.incr("demo:orders", 1).await?;
    let position = state.update_json("demo:position:BTC", None, |p: Option<f64>| p.unwrap_or(0.0) + 0.25).await?;
    println!("   position {position} BTC after an atomic update, order #{orders}");
    println!("   keys under demo: {:?}", state.keys("demo:").await?);

    println!("2. events carry the publisher's correlation ID to the subscriber");
    let (fills_tx, mut fills) = mpsc::unbounded_channel();
    let fills_sub = infra
        .events()
        .subscribe_json("demo.fills", move |fill: Fill, meta: EventMeta| {
            let fills_tx = fills_tx.clone();
            async move {
                // The handler runs under the publisher's correlation ID.
                let _ = fills_tx.send((fill, meta.correlation_id, current_correlation_id()));
            }
        })
        .await?;
    let (breakers_tx, mut breaker_changes) = mpsc::unbounded_channel();
    let breakers_sub = infra
        .events()
        .subscribe_json(BREAKER_CHANNEL, move |change: serde_json::Value, _: EventMeta| {
            let _ = breakers_tx.send(change);
            async {}
        })
        .await?;
    let execution = CorrelationId::parse("exec-demo-001")?;
    LogContext::execution(execution.as_str(), infra.emergency().bot_id(), "demo")
        .run(async {
            tracing::info!("publishing a fill");
            let fill = Fill { symbol: "BTC-USD".into(), qty: 0.25, price: 50_234.5 };
            infra.events().publish_json("demo.fills", &fill).await
        })
        .await?;
    if let Ok(Some((fill, in_envelope, in_handler))) = tokio::time::timeout(Duration::from_secs(5), fills.recv()).await
    {
        println!("   received {fill:?}, correlation {in_envelope:?} (handler sees {in_handler:?})");
    }

    println!("3. resilience: a policy for the bot's own dependency, on the facade's breaker registry");
    let retries = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&retries);
    let quick = Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(50),
        multiplier: 2.0,
        jitter: Jitter::Full,
    };
    let retry = Retry::new().max_attempts(3).backoff(quick).on_retry(move |_: &RetryEvent<'_, io::Error>| {
        counted.fetch_add(1, Ordering::Relaxed);
    });
    let quotes = infra
        .policy::<f64, io::Error>("demo-exchange", Idempotency::Idempotent)
        .retry(retry.clone().idempotency(Idempotency::Idempotent))
        .timeout(Duration::from_millis(200))
        .build();
    let calls = AtomicU32::new(0);
    let price = quotes
        .call(|| {
            let n = calls.fetch_add(1, Ordering::Relaxed);
            async move { if n < 2 { Err(io::Error::from(io::ErrorKind::ConnectionReset)) } else { Ok(50_240.0) } }
        })
        .await?;
    println!("   a quote (idempotent) after {} attempts: {price}", calls.load(Ordering::Relaxed));
    let place = infra
        .policy::<u64, io::Error>("demo-exchange", Idempotency::NonIdempotent)
        .retry(retry.idempotency(Idempotency::NonIdempotent))
        .timeout(Duration::from_millis(200))
        .build();
    let sent = AtomicU32::new(0);
    let order = place
        .call(|| {
            sent.fetch_add(1, Ordering::Relaxed);
            // The connection broke after the order was written: it may have been executed.
            async { Err::<u64, _>(io::Error::from(io::ErrorKind::ConnectionReset)) }
        })
        .await;
    println!(
        "   an order (not idempotent) that may have been applied is sent {} time(s), not retried: {}",
        sent.load(Ordering::Relaxed),
        order.map_or_else(
            |e| format!("{e} ({})", e.source().map_or_else(String::new, ToString::to_string)),
            |id| format!("order {id}")
        )
    );
    infra.breaker("demo-exchange").force_open();
    let refused = quotes.call(|| async { Ok(1.0) }).await;
    println!("   breaker forced open: {}", refused.map_or_else(|e| e.to_string(), |p| p.to_string()));
    infra.breaker("demo-exchange").reset();
    while let Ok(Some(change)) = tokio::time::timeout(Duration::from_millis(500), breaker_changes.recv()).await {
        println!("   on the bus: breaker {} {} -> {}", change["breaker"], change["from"], change["to"]);
        if change["to"] == "closed" {
            break;
        }
    }
    println!("   retries so far: {}", retries.load(Ordering::Relaxed));

    println!("4. emergency: the daily loss limit alerts, then halts; a person resumes");
    let emergency = infra.emergency();
    for pnl in [limit * 0.5, limit * 0.85, limit * 1.1] {
        let check = emergency.check_daily_loss(pnl).await?;
        println!("   P&L {pnl:.0}: {:?}, state {}, can trade: {}", check.status, check.state, emergency.can_trade());
    }
    if let Err(refused) = emergency.assert_can_trade() {
        println!("   an order is refused: {refused}");
    }
    let bot = emergency.bot_scope().clone();
    emergency.resume(bot.clone(), "alice", "limit reviewed with risk").await?;
    println!("   after alice's resume: {}, can trade: {}", emergency.state(), emergency.can_trade());
    for record in emergency.history(&bot, 5).await? {
        println!("   audit #{}: {} -> {} by {}: {}", record.seq, record.from, record.to, record.actor, record.reason);
    }

    println!("5. health of every part");
    let report = infra.health().await;
    println!("{}", serde_json::to_string_pretty(&report)?);

    println!("6. close: unsubscribe, then shut down in order");
    println!("   fills handled: {}", fills_sub.unsubscribe().await.handled());
    breakers_sub.unsubscribe().await;
    infra.close().await?;
    println!("   closed; healthy at the end: {}", report.healthy);
    Ok(())
}
