//! Building the configured bus from [`EventsConfig`].

use std::sync::Arc;

use infra_config::{Backend, EventsConfig, EventsMode};

use crate::{EventBus, EventsError, Result};

/// The bus `config` asks for, naming `source` (a bot ID, a service) as the publisher of its
/// events: [`MemoryBus`](crate::memory::MemoryBus), or on Redis a `RedisBus` (`mode =
/// "ephemeral"`) or a `DurableBus` (`mode = "durable"`), bounded by `operation_timeout` and
/// `connect_timeout`. Nothing connects yet: call [`EventBus::connect`] to fail at start-up. A
/// backend whose feature is not compiled in is [`EventsError::BackendNotCompiled`].
pub fn from_config(config: &EventsConfig, source: &str) -> Result<Arc<dyn EventBus>> {
    if config.mode == EventsMode::Durable && config.backend != Backend::Redis {
        return Err(EventsError::DurableNeedsRedis);
    }
    match config.backend {
        #[cfg(feature = "memory")]
        Backend::Memory => Ok(Arc::new(crate::memory::MemoryBus::new(source))),
        #[cfg(not(feature = "memory"))]
        Backend::Memory => {
            let _ = source;
            Err(EventsError::BackendNotCompiled { backend: "memory", feature: "memory" })
        }
        #[cfg(feature = "redis")]
        Backend::Redis => {
            let url = config.redis_url.as_ref().ok_or(EventsError::MissingUrl)?;
            Ok(match config.mode {
                EventsMode::Ephemeral => Arc::new(crate::redis::RedisBus::with_timeouts(
                    url,
                    &config.namespace,
                    source,
                    config.operation_timeout,
                    config.connect_timeout,
                )?),
                EventsMode::Durable => Arc::new(crate::redis::DurableBus::with_timeouts(
                    url,
                    &config.namespace,
                    source,
                    config.operation_timeout,
                    config.connect_timeout,
                    crate::redis::DurableOptions::from_config(config),
                )?),
            })
        }
        #[cfg(not(feature = "redis"))]
        Backend::Redis => Err(EventsError::BackendNotCompiled { backend: "redis", feature: "redis" }),
    }
}

#[cfg(test)]
mod tests {
    use infra_config::{Config, Environment};

    use super::*;

    #[test]
    fn builds_the_configured_backend_without_connecting() {
        let development = Config::for_env(Environment::Development).events;
        #[cfg(feature = "memory")]
        assert_eq!(from_config(&development, "bot").unwrap().backend(), "memory");
        #[cfg(not(feature = "memory"))]
        assert!(matches!(from_config(&development, "bot"), Err(EventsError::BackendNotCompiled { .. })));

        let staging = Config::for_env(Environment::Staging).events;
        match from_config(&staging, "bot") {
            #[cfg(feature = "redis")]
            Ok(bus) => assert_eq!(bus.backend(), "redis"),
            #[cfg(not(feature = "redis"))]
            Err(error) => assert_eq!(
                error.to_string(),
                "the redis backend is not compiled in; enable the `redis` feature of infra-events"
            ),
            #[allow(unreachable_patterns, reason = "one arm per feature set")]
            other => panic!("unexpected {other:?}"),
        }

        #[cfg(feature = "redis")]
        assert_eq!(
            from_config(&Config::for_env(Environment::Production).events, "bot").unwrap_err().to_string(),
            "the redis backend needs `events.redis_url`"
        );
    }

    #[test]
    fn durable_mode_needs_redis() {
        let mut memory = Config::for_env(Environment::Development).events;
        memory.mode = EventsMode::Durable;
        assert_eq!(
            from_config(&memory, "bot").unwrap_err().to_string(),
            "durable mode needs `events.backend = \"redis\"`: the memory bus keeps nothing across restarts"
        );
        #[cfg(feature = "redis")]
        {
            let mut staging = Config::for_env(Environment::Staging).events;
            staging.mode = EventsMode::Durable;
            assert!(format!("{:?}", from_config(&staging, "bot").unwrap()).starts_with("DurableBus"));
        }
    }
}
