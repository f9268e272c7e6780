//! Logging set up from the configuration, once per process.
//!
//! The first [`Infrastructure`](crate::Infrastructure) of a process installs infra-log's global
//! subscriber, unless the process already has one (then it is left alone). Its guard is shared
//! by every infrastructure alive at the same time; the last one to close (or be dropped)
//! flushes the buffered lines.

use std::{
    io::{self, Write},
    sync::{Arc, Mutex, PoisonError, Weak},
};

use infra_config::LoggingConfig;
use infra_log::{LogBuilder, LogError, LogGuard};
use serde::Serialize;

use crate::FacadeError;

/// The guard of the subscriber the facade installed, while some infrastructure uses it.
static INSTALLED: Mutex<Weak<LogGuard>> = Mutex::new(Weak::new());

/// Who set up the process's logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LogSetup {
    /// This infrastructure installed infra-log's subscriber from `logging`.
    Installed,
    /// Another infrastructure of this process had installed it; they share it.
    Shared,
    /// The process had its own subscriber (installed before, or by someone else): left alone,
    /// and the facade cannot count its dropped lines.
    External,
    /// Logging was not set up on request ([`InfrastructureBuilder::skip_logging`](crate::InfrastructureBuilder::skip_logging)).
    Skipped,
}

/// The process's logging as one infrastructure holds it.
#[derive(Debug)]
pub(crate) struct Logging {
    pub(crate) setup: LogSetup,
    guard: Mutex<Option<Arc<LogGuard>>>,
}

impl Logging {
    pub(crate) fn skipped() -> Self {
        Self { setup: LogSetup::Skipped, guard: Mutex::new(None) }
    }

    /// Installs the subscriber `config` describes, writing to `writer` (stdout when `None`),
    /// unless the process already has one.
    pub(crate) fn set_up(config: &LoggingConfig, writer: Option<SharedWriter>) -> Result<Self, FacadeError> {
        let mut installed = INSTALLED.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(guard) = installed.upgrade() {
            return Ok(Self { setup: LogSetup::Shared, guard: Mutex::new(Some(guard)) });
        }
        if tracing::dispatcher::has_been_set() {
            return Ok(Self { setup: LogSetup::External, guard: Mutex::new(None) });
        }
        let builder = |bridge: bool| {
            let builder = LogBuilder::new(config).bridge_log(bridge);
            match &writer {
                Some(writer) => builder.writer(writer.clone()),
                None => builder,
            }
        };
        let guard = match builder(true).init() {
            Ok(guard) => guard,
            // Another `log` logger is installed: keep it, install the subscriber without the bridge.
            Err(LogError::LoggerAlreadySet) => match builder(false).init() {
                Ok(guard) => guard,
                Err(LogError::AlreadyInitialized) => return Ok(Self::external()),
                Err(error) => return Err(FacadeError::Logging(error)),
            },
            // Installed by someone else in the meantime.
            Err(LogError::AlreadyInitialized) => return Ok(Self::external()),
            Err(error) => return Err(FacadeError::Logging(error)),
        };
        let guard = Arc::new(guard);
        *installed = Arc::downgrade(&guard);
        Ok(Self { setup: LogSetup::Installed, guard: Mutex::new(Some(guard)) })
    }

    fn external() -> Self {
        Self { setup: LogSetup::External, guard: Mutex::new(None) }
    }

    /// Lines the sink dropped so far, when the facade installed it (`None` otherwise, or after
    /// [`release`](Self::release)).
    pub(crate) fn dropped_lines(&self) -> Option<usize> {
        self.guard.lock().unwrap_or_else(PoisonError::into_inner).as_ref().map(|guard| guard.dropped_lines())
    }

    /// Lets go of the guard: the last holder's release flushes the buffered lines (waiting at
    /// most about a second).
    pub(crate) fn release(&self) {
        let guard = self.guard.lock().unwrap_or_else(PoisonError::into_inner).take();
        drop(guard);
    }
}

/// A writer that can be handed to the log builder more than once (a retry without the `log`
/// bridge needs it again).
#[derive(Clone)]
pub(crate) struct SharedWriter(Arc<Mutex<Box<dyn Write + Send>>>);

impl SharedWriter {
    pub(crate) fn new(writer: impl Write + Send + 'static) -> Self {
        Self(Arc::new(Mutex::new(Box::new(writer))))
    }
}

impl std::fmt::Debug for SharedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedWriter")
    }
}

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).flush()
    }
}
