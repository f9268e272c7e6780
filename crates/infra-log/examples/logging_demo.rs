//! A bot execution logged end to end: context binding, correlation across tasks, timing and
//! redaction.
//!
//! ```sh
//! cargo run -p infra-log --example logging_demo -- --format json
//! cargo run -p infra-log --example logging_demo -- --format console
//! ```

use std::time::Duration;

use infra_config::{Config, Environment, LogFormat};
use infra_log::{LogContext, bind, current_correlation_id, spawn, timed};

#[derive(Debug)]
struct ExchangeError(&'static str);

impl std::error::Error for ExchangeError {}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

async fn fetch_price(symbol: &str) -> Result<f64, ExchangeError> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    tracing::debug!(symbol, "price fetched");
    Ok(50_234.56)
}

async fn place_order(price: f64) -> Result<u64, ExchangeError> {
    tokio::time::sleep(Duration::from_millis(60)).await;
    if price > 100_000.0 { Err(ExchangeError("price out of band")) } else { Ok(981_234) }
}

fn parse_format() -> Result<LogFormat, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => Ok(LogFormat::Console),
        ["--format", "console"] => Ok(LogFormat::Console),
        ["--format", "json"] => Ok(LogFormat::Json),
        other => Err(format!("usage: logging_demo [--format console|json], got {other:?}")),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut logging = Config::for_env(Environment::Development).logging;
    logging.format = parse_format()?;
    let _guard = infra_log::init(&logging)?;

    tracing::info!(api_key = "sk-live-123", "connecting (the key is redacted)");
    LogContext::execution("exec-2026-001", "bot-1", "arb-btc")
        .run(async {
            let price = LogContext::node("price_check").run(timed("fetch_price").run(fetch_price("BTC-USD"))).await?;
            let id = current_correlation_id();
            let audit = spawn(async move {
                tracing::info!(correlation = ?id, "audit task sees the same correlation id");
            });
            let order_id = bind!(venue = "binance", side = "buy")
                .run(timed("place_order").slow_after(Duration::from_millis(50)).run(place_order(price)))
                .await?;
            tracing::info!(order_id, price, "order placed");
            audit.await.ok();
            Ok::<_, ExchangeError>(())
        })
        .await?;
    Ok(())
}
