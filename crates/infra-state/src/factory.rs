//! Building the configured backend from [`StateConfig`].

use std::sync::Arc;

use infra_config::{Backend, StateConfig};

#[cfg(not(all(feature = "memory", feature = "redis")))]
use crate::StateError;
use crate::{DynStateStore, Result};

/// The store `config` asks for: memory or Redis, under `config.namespace`. Nothing connects
/// yet. A backend whose feature is not compiled in is a [`StateError::BackendNotCompiled`].
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
