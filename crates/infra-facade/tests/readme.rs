//! The README's quick start, compiled and run as written there.

use infra_facade::prelude::*;

#[tokio::test]
async fn the_readme_quick_start_runs() -> Result<(), Box<dyn std::error::Error>> {
    // "development": memory backends; "staging" / "production": Redis (see below).
    let infra = create_infrastructure("development").await?;
    let (state, events, emergency) = (infra.state(), infra.events(), infra.emergency());

    state.set_json("price:BTC", &50_234.5, None).await?;
    if let Some(lock) = state.lock("lock:rebalance", std::time::Duration::from_secs(30)).await? {
        emergency.assert_can_trade()?; // a typed error naming the state, scope and reason
        events.publish_json("orders", &serde_json::json!({"side": "buy", "qty": 0.5})).await?;
        lock.release().await?;
    }
    let health = serde_json::to_string(&infra.health().await)?;
    assert!(health.contains("\"healthy\":true"), "{health}");
    infra.close().await?;
    Ok(())
}
