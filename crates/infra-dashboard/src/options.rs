//! [`DashboardOptions`]: where the dashboard listens, its token and what it shows.

use std::{net::SocketAddr, time::Duration};

use infra_facade::config::{DashboardConfig, Secret};

/// How a [`Dashboard`](crate::Dashboard) runs, from the `[dashboard]` section
/// ([`DashboardOptions::from_config`]) or built in code with the setters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DashboardOptions {
    /// Where it listens (port 0 picks a free port; see
    /// [`Dashboard::local_addr`](crate::Dashboard::local_addr)).
    pub listen: SocketAddr,
    /// The token changing actions need (`Authorization: Bearer <token>`); none: every changing
    /// action is refused with 403.
    pub token: Option<Secret>,
    /// The bus channels carrying prices (glob).
    pub prices_pattern: String,
    /// The bus channels carrying executions (glob).
    pub executions_pattern: String,
    /// A heartbeat older than this is flagged stale (default 3 s: three resync intervals of the
    /// controller's default).
    pub stale_after: Duration,
    /// Bots whose heartbeat version starts with this are left out of the fleet (operator
    /// tools such as infractl; the dashboard's own controller always is).
    pub hide_version_prefix: Option<String>,
}

impl Default for DashboardOptions {
    fn default() -> Self {
        Self::from_config(&DashboardConfig::default())
    }
}

impl DashboardOptions {
    /// The options `config` describes.
    pub fn from_config(config: &DashboardConfig) -> Self {
        Self {
            listen: config.listen,
            token: config.token.clone(),
            prices_pattern: config.prices_pattern.clone(),
            executions_pattern: config.executions_pattern.clone(),
            stale_after: Duration::from_secs(3),
            hide_version_prefix: None,
        }
    }

    /// Listens on `addr`.
    #[must_use]
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Changing actions need `token`.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Secret::new(token));
        self
    }

    /// Prices come from the channels matching `pattern`.
    #[must_use]
    pub fn prices_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.prices_pattern = pattern.into();
        self
    }

    /// Executions come from the channels matching `pattern`.
    #[must_use]
    pub fn executions_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.executions_pattern = pattern.into();
        self
    }

    /// Flags heartbeats older than `after` as stale.
    #[must_use]
    pub fn stale_after(mut self, after: Duration) -> Self {
        self.stale_after = after;
        self
    }

    /// Leaves out of the fleet the bots whose heartbeat version starts with `prefix`.
    #[must_use]
    pub fn hide_version_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.hide_version_prefix = Some(prefix.into());
        self
    }
}
