//! Building the configured backend from [`StateConfig`].

use std::sync::Arc;

use infra_config::{Backend, StateConfig};

#[cfg(not(all(feature = "memory", feature = "redis")))]
use crate::StateError;
use crate::{DynStateStore, Result};

/// The store `config` asks for: memory or Redis, under `config.namespace`. Nothing connects
/// yet. A backend whose feature is not compiled in is a [`StateError::BackendNotCompiled`](crate::StateError::BackendNotCompiled).
pub fn from_config(config: &StateConfig) -> Result<Arc<DynStateStore>> {
    match config.backend {
        #[cfg(feature = "memory")]
        Backend::Memory => Ok(Arc::new(crate::memory::MemoryStore::new(config.namespace.clone()))),
        #[cfg(not(feature = "memory"))]
        Backend::Memory => Err(StateError::BackendNotCompiled { backend: "memory", feature: "memory" }),
        #[cfg(feature = "redis")]
        Backend::Redis => Ok(Arc::new(crate::redis::RedisStore::new(config)?)),
        #[cfg(not(feature = "redis"))]
        Backend::Redis => Err(StateError::BackendNotCompiled { backend: "redis", feature: "redis" }),
    }
}

#[cfg(test)]
mod tests {
    use infra_config::{Config, Environment};

    use super::*;

    #[test]
    fn builds_the_configured_backend_without_connecting() {
        let development = Config::for_env(Environment::Development).state;
        let store = from_config(&development).unwrap();
        assert_eq!((store.backend(), store.namespace()), ("memory", "dev"));

        let staging = Config::for_env(Environment::Staging).state;
        match from_config(&staging) {
            #[cfg(feature = "redis")]
            Ok(store) => assert_eq!((store.backend(), store.namespace()), ("redis", "staging")),
            #[cfg(not(feature = "redis"))]
            Err(error) => assert_eq!(
                error.to_string(),
                "the redis backend is not compiled in; enable the `redis` feature of infra-state"
            ),
            #[allow(unreachable_patterns, reason = "one arm per feature set")]
            other => panic!("unexpected {other:?}"),
        }
    }

    #[cfg(feature = "redis")]
    #[test]
    fn redis_without_a_url_is_a_typed_error() {
        let production = Config::for_env(Environment::Production).state;
        let error = from_config(&production).unwrap_err();
        assert_eq!(error.to_string(), "the redis backend needs `state.redis_url`");
    }
}
