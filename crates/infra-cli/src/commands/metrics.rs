//! `infractl metrics [--listen ADDR]`: the fleet as Prometheus metrics.
//!
//! Each scrape reads the fleet from the store (every bot with a live heartbeat, infractl's own
//! controllers left out) and sets `infra_emergency_state`, `infra_emergency_heartbeat_timestamp_seconds`
//! and `infra_risk_limit_utilization_ratio` per bot, then pings Redis (`infra_redis_up`,
//! `infra_redis_ping_latency_seconds`). A bot whose heartbeat expired keeps its last values, so
//! an alert on the heartbeat's age fires for it.

use std::{net::SocketAddr, sync::Arc};

use infra_facade::{
    BeforeScrape, Infrastructure, MetricsEndpoint, PrometheusRecorder, emergency::record_fleet_metrics,
};
use serde_json::json;

use crate::{
    commands::Context,
    error::CliError,
    setup::{self, CONTROLLER_VERSION_PREFIX, Connect},
};

/// Where it listens when neither `--listen` nor `metrics.listen` says.
const DEFAULT_LISTEN: &str = "127.0.0.1:9465";

/// Serves until Ctrl-C.
pub(crate) async fn run(context: &Context, listen: Option<SocketAddr>) -> Result<(), CliError> {
    let config = &context.loaded.config;
    let listen = match listen.or(config.metrics.listen) {
        Some(listen) => listen,
        None => DEFAULT_LISTEN.parse().map_err(|_| CliError::Runtime("invalid default address".to_owned()))?,
    };
    // The recorder goes in after infractl's own controller is built, so that controller (not a
    // bot) records nothing of its own.
    let infra = Arc::new(setup::build(config, Connect::Lazily, context.verbose()).await?);
    let recorder = PrometheusRecorder::install().map_err(|e| CliError::runtime("metrics", &e))?;
    let endpoint = match MetricsEndpoint::start_with(listen, recorder, Some(refresh(Arc::clone(&infra)))).await {
        Ok(endpoint) => endpoint,
        Err(error) => {
            infra.close().await.ok();
            return Err(CliError::runtime("metrics", &error));
        }
    };
    let address = endpoint.local_addr();
    let record = json!({"listening": format!("http://{address}/metrics")});
    let printed = context.printer.emit(&record, || format!("serving fleet metrics on http://{address}/metrics"));
    if printed.is_ok() {
        let _ = tokio::signal::ctrl_c().await;
    }
    endpoint.close().await;
    infra.close().await.ok();
    printed
}

/// Before each scrape: the fleet from the store, then the Redis pings.
fn refresh(infra: Arc<Infrastructure>) -> BeforeScrape {
    Arc::new(move || {
        let infra = Arc::clone(&infra);
        Box::pin(async move {
            match infra.emergency().fleet().await {
                Ok(fleet) => {
                    let bots: Vec<_> = fleet
                        .into_iter()
                        .filter(|member| !member.heartbeat.version.starts_with(CONTROLLER_VERSION_PREFIX))
                        .collect();
                    record_fleet_metrics(&bots);
                }
                Err(error) => eprintln!("infractl: metrics: cannot read the fleet: {error}"),
            }
            // Records `infra_redis_up` and the ping latency of the store and the bus.
            let _ = infra.health().await;
        })
    })
}
