//! A bot's state on the configured backend: memory by default, Redis with `INFRA_ENV=staging`
//! (which expects Redis on 127.0.0.1:6379).
//!
//! ```sh
//! cargo run -p infra-state --example state_demo
//! INFRA_ENV=staging cargo run -p infra-state --all-features --example state_demo
//! ```

#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use std::time::Duration;

use infra_config::Config;
use infra_state::{CasOutcome, Expected, StateStoreExt, StateValue};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Position {
    qty: i64,
    avg_price: f64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::load()?;
    let state = infra_state::from_config(&config.state)?;
    println!("backend: {} (namespace `{}`, environment {})", state.backend(), state.namespace(), config.environment);

    // A price with a short life, and a lock that frees itself.
    state.set_json("price:BTC", &50_234.56, Some(Duration::from_secs(5))).await?;
    let locked =
        state.set_if_not_exists("lock:rebalance", StateValue::json("bot-1")?, Some(Duration::from_secs(30))).await?;
    println!("price {:?}, rebalance lock taken: {locked}", state.get_json::<f64>("price:BTC").await?);

    // Counters are atomic across tasks and processes.
    let trades = state.incr("trades:today", 1).await?;
    let pnl = state.incr_float("pnl:today", -12.5).await?;
    println!("trades today: {trades}, pnl: {pnl}");

    // An optimistic read-modify-write, safe when several bots share the position.
    let position = state
        .update_json("position:BTC", None, |p: Option<Position>| {
            let p = p.unwrap_or_default();
            let qty = p.qty + 2;
            Position { qty, avg_price: (p.avg_price * p.qty as f64 + 50_000.0 * 2.0) / qty as f64 }
        })
        .await?;
    println!("position: {position:?}");

    // The kill switch's kind of transition: only from the state we saw.
    let seen = state.get_versioned("mode").await?;
    let expected = seen.map_or(Expected::Absent, |v| Expected::Version(v.version));
    match state.compare_and_swap("mode", expected, StateValue::json("NORMAL")?, None).await? {
        CasOutcome::Swapped(version) => println!("mode set, version {version}"),
        CasOutcome::Conflict(current) => println!("someone else changed the mode: {current:?}"),
    }

    println!("keys: {:?}", state.keys("").await?);
    Ok(())
}
