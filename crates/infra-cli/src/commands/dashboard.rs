//! `infractl dashboard [--listen ADDR]`: the live operator dashboard until Ctrl-C.
//!
//! infractl's controller (not a bot: `infractl-<pid>`) makes the transitions the page asks
//! for; infractl's own controllers are left out of the fleet.

use std::{net::SocketAddr, sync::Arc};

use infra_dashboard::{Dashboard, DashboardOptions};
use serde_json::json;

use crate::{
    commands::Context,
    error::CliError,
    setup::{self, CONTROLLER_VERSION_PREFIX, Connect},
};

/// Serves until Ctrl-C.
pub(crate) async fn run(context: &Context, listen: Option<SocketAddr>) -> Result<(), CliError> {
    let config = &context.loaded.config;
    let mut options = DashboardOptions::from_config(&config.dashboard).hide_version_prefix(CONTROLLER_VERSION_PREFIX);
    if let Some(listen) = listen {
        options = options.listen(listen);
    }
    if options.token.is_none() {
        eprintln!(
            "infractl: dashboard: no `dashboard.token` configured: the page is read-only (set INFRA_DASHBOARD__TOKEN)"
        );
    }
    // Lazily: a Redis that is down is shown on the page, not a refusal to start.
    let infra = Arc::new(setup::build(config, Connect::Lazily, context.verbose()).await?);
    let dashboard = match Dashboard::start(Arc::clone(&infra), options).await {
        Ok(dashboard) => dashboard,
        Err(error) => {
            infra.close().await.ok();
            return Err(CliError::runtime("dashboard", &error));
        }
    };
    let address = dashboard.local_addr();
    let record = json!({"listening": format!("http://{address}/")});
    let printed = context.printer.emit(&record, || format!("serving the dashboard on http://{address}/"));
    if printed.is_ok() {
        let _ = tokio::signal::ctrl_c().await;
    }
    dashboard.close().await;
    infra.close().await.ok();
    printed
}
