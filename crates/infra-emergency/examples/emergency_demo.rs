//! The kill switch of two bots sharing one in-process store and bus: risk limits raise an
//! alert, then halt a bot automatically; a person resumes it; a global halt stops both; the
//! audit log tells who did what and why.
//!
//! ```sh
//! cargo run -p infra-emergency --example emergency_demo
//! ```

#![allow(clippy::print_stdout, reason = "an example prints what it does")]

use std::sync::Arc;

use infra_config::{Config, Environment};
use infra_emergency::{ControllerOptions, EmergencyController, EmergencyError, LimitOptions, Scope};
use infra_events::{EventBus, memory::MemoryBus};
use infra_state::{StateStore, memory::MemoryStore};

async fn bot(
    id: &str,
    store: &Arc<dyn StateStore>,
    bus: &Arc<dyn EventBus>,
) -> Result<EmergencyController, EmergencyError> {
    let mut config = Config::for_env(Environment::Development).emergency;
    config.bot_id = id.to_owned();
    config.daily_loss_limit = -500.0;
    config.alert_fraction = 0.8;
    config.auto_halt_on_limit = true;
    EmergencyController::start(&config, store.clone(), bus.clone(), ControllerOptions::default()).await
}

#[tokio::main]
async fn main() -> Result<(), EmergencyError> {
    // One store and one bus for the fleet (Redis in production: same code, other backends).
    let store: Arc<dyn StateStore> = Arc::new(MemoryStore::new("demo"));
    let bus: Arc<dyn EventBus> = Arc::new(MemoryBus::new("demo"));
    let arb = bot("arb-btc-1", &store, &bus).await?;
    let maker = bot("maker-eth-1", &store, &bus).await?;
    let _log = arb.subscribe(|event| {
        if let Some(record) = event.record() {
            println!(
                "  [event] {} {} -> {} by {} ({}): {}",
                record.scope, record.from, record.to, record.actor, record.source, record.reason
            );
        }
    });

    println!("1. the day's P&L drifts: alert at 80% of the -500 limit, halt once breached");
    for pnl in [-120.0, -410.0, -505.0] {
        let check = arb.check_daily_loss(pnl).await?;
        println!("   P&L {pnl}: {:?}, state {}, can trade: {}", check.status, check.state, arb.can_trade());
    }
    if let Err(refused) = arb.assert_can_trade() {
        println!("   an order is refused: {refused}");
    }
    println!("   cancels and exits still allowed: {}", arb.can_reduce());

    println!("2. a noisy metric needs three breaches in a row");
    maker.set_limit_options("spread_bps", LimitOptions::confirmations(3));
    for spread in [55.0, 60.0, 20.0, 55.0, 58.0, 61.0] {
        let check = maker.check_risk_limit("spread_bps", spread, 50.0, true).await?;
        println!("   spread {spread} bps: {:?}, state {}", check.status, check.state);
    }

    println!("3. the P&L recovers: the halt stays until a person resumes it");
    arb.check_daily_loss(-50.0).await?;
    println!("   after recovery: state {}", arb.state());
    let arb_scope = arb.bot_scope().clone();
    arb.resume(arb_scope.clone(), "alice", "loss booked, limit reviewed with risk").await?;
    println!("   after alice's resume: state {}, can trade: {}", arb.state(), arb.can_trade());

    println!("4. an operator halts the whole fleet");
    arb.halt(Scope::Global, "bob", "exchange maintenance").await?;
    // Each bot applies it from the bus at once; a refresh also writes both heartbeats now.
    arb.refresh().await?;
    maker.refresh().await?;
    for controller in [&arb, &maker] {
        let status = controller.status();
        println!("   {}: {} imposed by {} ({})", controller.bot_id(), status.state, status.scope, status.reason);
    }
    for member in arb.fleet().await? {
        println!(
            "   fleet: {} applies {} (latest global applied: {})",
            member.heartbeat.bot, member.heartbeat.state, member.applied_latest_global
        );
    }

    println!("5. the audit log of arb-btc-1, newest first");
    for record in arb.history(&arb_scope, 10).await? {
        println!(
            "   #{} {} -> {} by {} ({}): {}",
            record.seq, record.from, record.to, record.actor, record.source, record.reason
        );
    }
    arb.close().await?;
    maker.close().await?;
    Ok(())
}
