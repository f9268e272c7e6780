//! Breakers by name: one per external dependency per process.

use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock, PoisonError},
};

use super::{BreakerMetrics, BreakerSettings, CircuitBreaker};

/// Hands out one [`CircuitBreaker`] per name, so every caller of a dependency shares its breaker.
/// Lookups take a short lock; keep the breaker you got for hot paths.
#[derive(Debug, Default)]
pub struct BreakerRegistry {
    defaults: BreakerSettings,
    breakers: Mutex<HashMap<String, CircuitBreaker>>,
}

impl BreakerRegistry {
    /// A registry whose new breakers use `defaults`.
    pub fn new(defaults: BreakerSettings) -> Self {
        Self { defaults, breakers: Mutex::default() }
    }

    /// The process-wide registry (default settings).
    pub fn global() -> &'static Self {
        static GLOBAL: OnceLock<BreakerRegistry> = OnceLock::new();
        GLOBAL.get_or_init(Self::default)
    }

    /// The breaker named `name`, made with the registry's defaults if new.
    pub fn get(&self, name: &str) -> CircuitBreaker {
        self.get_or_insert_with(name, || self.defaults.clone())
    }

    /// The breaker named `name`, made with `settings()` if new (existing breakers keep theirs).
    pub fn get_or_insert_with(&self, name: &str, settings: impl FnOnce() -> BreakerSettings) -> CircuitBreaker {
        let mut breakers = self.breakers.lock().unwrap_or_else(PoisonError::into_inner);
        breakers.entry(name.to_owned()).or_insert_with(|| CircuitBreaker::new(name, settings())).clone()
    }

    /// The breaker named `name`, if one was made.
    pub fn find(&self, name: &str) -> Option<CircuitBreaker> {
        self.breakers.lock().unwrap_or_else(PoisonError::into_inner).get(name).cloned()
    }

    /// Metrics of every breaker, by name.
    pub fn metrics(&self) -> Vec<BreakerMetrics> {
        let breakers: Vec<CircuitBreaker> =
            self.breakers.lock().unwrap_or_else(PoisonError::into_inner).values().cloned().collect();
        let mut all: Vec<BreakerMetrics> = breakers.iter().map(CircuitBreaker::metrics).collect();
        all.sort_by(|a, b| a.name.cmp(b.name));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BreakerState;

    #[test]
    fn one_breaker_per_name() {
        let registry = BreakerRegistry::new(BreakerSettings::default().failure_threshold(1));
        let a = registry.get("binance");
        registry.get("binance").force_open();
        assert_eq!(a.state(), BreakerState::ForcedOpen, "the same breaker");
        assert_eq!(registry.get("kraken").state(), BreakerState::Closed);
        assert_eq!(registry.get("kraken").settings().failure_threshold, 1);
        let names: Vec<_> = registry.metrics().into_iter().map(|m| m.name.to_string()).collect();
        assert_eq!(names, ["binance", "kraken"]);
        assert!(registry.find("coinbase").is_none());
        assert!(std::ptr::eq(BreakerRegistry::global(), BreakerRegistry::global()));
    }
}
