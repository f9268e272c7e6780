//! Installing the subscriber: bunyan JSON (see `bunyan.rs`) or console text, through a
//! non-blocking writer, and the bridge that brings `log` records into it.

use std::{
    io::{self, IsTerminal, Write},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::Duration,
};

use infra_config::{LogFormat, LoggingConfig};
use time::format_description::well_known::Rfc3339;
use tracing::{Dispatch, Metadata};
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_bunyan_formatter::JsonStorageLayer;
use tracing_subscriber::{
    Layer, Registry,
    filter::{LevelFilter, Targets},
    fmt::MakeWriter,
    layer::SubscriberExt,
};

use crate::{LogError, bridge, bunyan::BunyanLayer, redact};

/// Lines the non-blocking writer buffers before it starts dropping (and counting) them.
pub const DEFAULT_BUFFERED_LINES: usize = 128_000;
/// The variable whose directives, when set, replace the configured level.
pub const RUST_LOG: &str = "RUST_LOG";

/// The counter of lines the non-blocking writer dropped (docs/observability/metrics.md).
const LINES_DROPPED: &str = "infra_log_lines_dropped_total";
/// How often the exported count of dropped lines catches up with the writer's.
const METRICS_EVERY: Duration = Duration::from_secs(1);

/// Installs the global subscriber described by `config`, writing to stdout, and bridges the
/// records of the `log` crate into it (see [`LogBuilder::init`]).
///
/// Keep the returned guard alive until the program ends: dropping it flushes the buffered
/// lines. Calling `init` twice returns [`LogError::AlreadyInitialized`].
pub fn init(config: &LoggingConfig) -> Result<LogGuard, LogError> {
    LogBuilder::new(config).init()
}

/// Like [`init`], but writes into any `io::Write` (a file, a buffer in tests, a socket).
pub fn init_with_writer(config: &LoggingConfig, writer: impl Write + Send + 'static) -> Result<LogGuard, LogError> {
    LogBuilder::new(config).writer(writer).init()
}

/// Keeps the background writer alive; dropping it flushes what is buffered (waiting at most
/// about a second) and reports on stderr how many lines were dropped, if any.
///
/// While it lives, the metric `infra_log_lines_dropped_total` (a counter without labels, one
/// per process: keep one guard) follows [`dropped_lines`](Self::dropped_lines) within a
/// second, and is exact once the guard is dropped. Unlike the other components' handles, it is
/// looked up in the global recorder at each update (once a second, on a thread of its own), so
/// the recorder may be installed after logging, as the facade does; logging a line costs
/// nothing more.
#[derive(Debug)]
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    drops: Drops,
    worker: Option<WorkerGuard>,
    metrics: Option<MetricsThread>,
}

impl LogGuard {
    /// Lines dropped because the sink was slower than the program and the buffer was full.
    /// Each drop is also reported by a WARN line in the log itself once the sink catches up.
    pub fn dropped_lines(&self) -> usize {
        self.drops.lost()
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        drop(self.worker.take());
        // The last update comes after the flush, so the exported total is final.
        match self.metrics.take() {
            Some(metrics) => metrics.stop(),
            None => record_dropped(self.drops.lost()),
        }
        let dropped = self.drops.lost();
        if dropped > 0 {
            eprintln!("infra-log: {dropped} log lines were dropped because the log sink was slower than the program");
        }
    }
}

/// Options beyond [`LoggingConfig`]: the bunyan `name`, the writer, the buffer size.
#[derive(Debug)]
pub struct LogBuilder {
    format: LogFormat,
    level: String,
    name: String,
    writer: Option<BoxedWriter>,
    buffered_lines: usize,
    use_rust_log: bool,
    bridge_log: bool,
}

struct BoxedWriter(Box<dyn Write + Send>);

impl std::fmt::Debug for BoxedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BoxedWriter")
    }
}

impl LogBuilder {
    /// Starts from a configuration: its format and level.
    pub fn new(config: &LoggingConfig) -> Self {
        Self {
            format: config.format,
            level: config.level.clone(),
            name: default_name(),
            writer: None,
            buffered_lines: DEFAULT_BUFFERED_LINES,
            use_rust_log: true,
            bridge_log: true,
        }
    }

    /// The bunyan `name` of every record (default: the executable's name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Writes into `writer` instead of stdout (never coloured).
    pub fn writer(mut self, writer: impl Write + Send + 'static) -> Self {
        self.writer = Some(BoxedWriter(Box::new(writer)));
        self
    }

    /// Lines buffered before new ones are dropped and counted.
    pub fn buffered_lines_limit(mut self, lines: usize) -> Self {
        self.buffered_lines = lines.max(1);
        self
    }

    /// Ignores `RUST_LOG` even when it is set (by default its directives replace the level).
    pub fn ignore_rust_log(mut self) -> Self {
        self.use_rust_log = false;
        self
    }

    /// Whether [`init`](Self::init) also installs the `log` → tracing bridge (default: yes).
    /// Turn it off to keep another `log` logger; records of the `log` crate then go to it.
    pub fn bridge_log(mut self, bridge: bool) -> Self {
        self.bridge_log = bridge;
        self
    }

    /// Installs the subscriber globally and, unless [`bridge_log(false)`](Self::bridge_log),
    /// makes it the `log` crate's logger too: records of libraries that log through `log`
    /// (fred's reconnections and protocol errors) are filtered by the same level and targets
    /// (their own target, e.g. `fred::router`), redacted and written like any other line.
    ///
    /// Fails with [`LogError::AlreadyInitialized`] when a subscriber is already installed, and
    /// with [`LogError::LoggerAlreadySet`] when another `log` logger is (in which case nothing
    /// is installed). The bridge is installed first, so that this second failure leaves nothing
    /// behind; if the subscriber then cannot be installed, the bridge stays and feeds the
    /// subscriber already there.
    pub fn init(self) -> Result<LogGuard, LogError> {
        let bridge_log = self.bridge_log;
        let (dispatch, guard, max_level) = self.build_parts()?;
        if bridge_log {
            bridge::install(max_level)?;
        }
        tracing::dispatcher::set_global_default(dispatch).map_err(|_| LogError::AlreadyInitialized)?;
        Ok(guard)
    }

    /// Builds the subscriber without installing it, for scoped use
    /// (`tracing::dispatcher::with_default`) in tests and embedders. No `log` bridge is
    /// installed; an embedder wanting one installs `tracing_log::LogTracer`, which feeds the
    /// current subscriber, scoped or global.
    pub fn build(self) -> Result<(Dispatch, LogGuard), LogError> {
        self.build_parts().map(|(dispatch, guard, _)| (dispatch, guard))
    }

    /// The subscriber, its guard and the most verbose level its filter enables.
    fn build_parts(self) -> Result<(Dispatch, LogGuard, LevelFilter), LogError> {
        let filter = self.filter()?;
        let max_level = Layer::<Registry>::max_level_hint(&filter).unwrap_or(LevelFilter::TRACE);
        let (ansi, writer): (bool, Box<dyn Write + Send>) = match self.writer {
            Some(BoxedWriter(writer)) => (false, writer),
            None => (io::stdout().is_terminal(), Box::new(io::stdout())),
        };
        let (non_blocking, worker) = NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(self.buffered_lines)
            .thread_name("infra-log-writer")
            .finish(writer);
        let drops = Drops {
            counter: non_blocking.error_counter(),
            own: Arc::new(AtomicUsize::new(0)),
            reported: Arc::new(AtomicUsize::new(0)),
        };
        let sink = Sink {
            inner: non_blocking,
            drops: drops.clone(),
            json: self.format == LogFormat::Json,
            name: self.name.clone().into(),
        };
        let dispatch = match self.format {
            LogFormat::Json => Dispatch::new(
                Registry::default().with(filter).with(JsonStorageLayer).with(BunyanLayer::new(self.name, sink)),
            ),
            LogFormat::Console => Dispatch::new(Registry::default().with(filter).with(
                tracing_subscriber::fmt::layer().fmt_fields(redact::RedactingFields).with_ansi(ansi).with_writer(sink),
            )),
        };
        let metrics = MetricsThread::start(drops.clone());
        Ok((dispatch, LogGuard { drops, worker: Some(worker), metrics }, max_level))
    }

    fn filter(&self) -> Result<Targets, LogError> {
        let from_env = std::env::var(RUST_LOG).ok().filter(|v| self.use_rust_log && !v.trim().is_empty());
        let (directives, origin) = match &from_env {
            Some(value) => (value.as_str(), "environment variable `RUST_LOG`"),
            None => (self.level.as_str(), "config key `logging.level`"),
        };
        parse_filter(directives, origin)
    }
}

/// Parses `level` or `target=level,...` directives. The crate's own context spans (target
/// `infra_log`, ERROR level) stay enabled unless `infra_log` is named explicitly, so log lines
/// keep their context whatever the filter.
pub(crate) fn parse_filter(directives: &str, origin: &'static str) -> Result<Targets, LogError> {
    let targets: Targets = directives.trim().parse().map_err(|e: tracing_subscriber::filter::ParseError| {
        LogError::InvalidFilter { directives: directives.to_owned(), origin, reason: e.to_string() }
    })?;
    let names_us = targets.iter().any(|(target, _)| target == "infra_log" || target.starts_with("infra_log::"));
    let quiet_default = targets.default_level().is_none_or(|level| level < LevelFilter::ERROR);
    Ok(if !names_us && quiet_default { targets.with_target("infra_log", LevelFilter::ERROR) } else { targets })
}

fn default_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|path| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "infra".to_owned())
}

/// The writer every formatter writes through: redacts lines (and gives bridged `log` records
/// their own target in JSON), reports dropped lines, and hands each line to the non-blocking
/// writer in one piece.
#[derive(Clone)]
struct Sink {
    inner: NonBlocking,
    drops: Drops,
    json: bool,
    name: Arc<str>,
}

/// Accounting of dropped lines: the writer counts every drop, including our own reports that
/// found no room; those are not the program's lines and are subtracted.
#[derive(Debug, Clone)]
struct Drops {
    counter: ErrorCounter,
    own: Arc<AtomicUsize>,
    reported: Arc<AtomicUsize>,
}

impl Drops {
    /// Lines of the program lost so far. Never more than the true figure (a report about to be
    /// written counts as our own loss until it is known to have found room), since the metric
    /// it feeds can only go up.
    fn lost(&self) -> usize {
        self.counter.dropped_lines().saturating_sub(self.own.load(Ordering::Acquire))
    }
}

/// Sets `infra_log_lines_dropped_total` to `lost` in the global recorder (a no-op without one).
/// Looked up each time: rare (once a second), and the recorder may come after the logger.
fn record_dropped(lost: usize) {
    metrics::describe_counter!(LINES_DROPPED, metrics::Unit::Count, "Lines the non-blocking log sink dropped");
    metrics::counter!(LINES_DROPPED).absolute(u64::try_from(lost).unwrap_or(u64::MAX));
}

/// The thread that copies the count of dropped lines into the metric every [`METRICS_EVERY`]:
/// the writer's counter is only read there, so logging a line pays nothing for the metric.
#[derive(Debug)]
struct MetricsThread {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl MetricsThread {
    /// `None` when no thread can be started: the metric is then updated only when the guard is
    /// dropped.
    fn start(drops: Drops) -> Option<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("infra-log-metrics".into())
            .spawn(move || {
                // Ends when the guard drops its sender, after one last update.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(METRICS_EVERY) {
                    record_dropped(drops.lost());
                }
                record_dropped(drops.lost());
            })
            .ok()?;
        Some(Self { stop, thread })
    }

    /// Makes the last update and waits for it.
    fn stop(self) {
        drop(self.stop);
        let _ = self.thread.join();
    }
}

impl Sink {
    /// Says in the log itself how many lines were lost since the last report. Called right
    /// after a line found room; a report that finds none is retried later.
    fn report_drops(&self, out: &mut NonBlocking) {
        let drops = &self.drops;
        let dropped = drops.lost();
        let reported = drops.reported.load(Ordering::Relaxed);
        if dropped <= reported
            || drops.reported.compare_exchange(reported, dropped, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        let lost = dropped - reported;
        let message = format!("{lost} log lines dropped: the log sink is slower than the program");
        let time = time::OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default();
        let line = if self.json {
            let record = serde_json::json!({
                "v": 0, "name": &*self.name, "msg": message, "level": 40, "pid": std::process::id(),
                "time": time, "target": "infra_log", "dropped_lines": lost, "dropped_lines_total": dropped,
            });
            format!("{record}\n")
        } else {
            format!("{time}  WARN infra_log: {message} dropped_lines={lost} dropped_lines_total={dropped}\n")
        };
        let before = drops.counter.dropped_lines();
        // Counted as our own loss before the writer can count it, so that `lost` never
        // overstates the program's, even for an instant; taken back if it found room.
        drops.own.fetch_add(1, Ordering::AcqRel);
        let _ = out.write_all(line.as_bytes());
        if drops.counter.dropped_lines() > before {
            // No room after all: not the program's loss (kept in `own`); retry later.
            let _ = drops.reported.compare_exchange(dropped, reported, Ordering::Relaxed, Ordering::Relaxed);
        } else {
            drops.own.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { sink: self, bridged: false }
    }

    fn make_writer_for(&'a self, metadata: &Metadata<'_>) -> Self::Writer {
        LineWriter { sink: self, bridged: bridge::is_bridged(metadata) }
    }
}

struct LineWriter<'a> {
    sink: &'a Sink,
    /// The line is a bridged `log` record (its formatter gave the metadata).
    bridged: bool,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = self.sink.inner.clone();
        let before = self.sink.drops.counter.dropped_lines();
        if self.sink.json && self.bridged {
            out.write_all(&redact::redact_json_line(&bridge::normalize_json_line(buf)))?;
        } else if self.sink.json {
            out.write_all(&redact::redact_json_line(buf))?;
        } else {
            out.write_all(&redact::redact_text_line(buf))?;
        }
        let after = self.sink.drops.counter.dropped_lines();
        if after == before && after > 0 {
            self.sink.report_drops(&mut out);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_keep_context_spans() {
        let targets = parse_filter("my_bot=debug", "test").unwrap();
        assert!(targets.would_enable("infra_log", &tracing::Level::ERROR));
        assert!(!targets.would_enable("infra_log", &tracing::Level::WARN));
        assert!(targets.would_enable("my_bot::orders", &tracing::Level::DEBUG));
        assert!(!targets.would_enable("other", &tracing::Level::ERROR));

        let targets = parse_filter("warn", "test").unwrap();
        assert!(targets.would_enable("anything", &tracing::Level::WARN));
        assert!(!targets.would_enable("anything", &tracing::Level::INFO));

        let targets = parse_filter("info,infra_log=off", "test").unwrap();
        assert!(!targets.would_enable("infra_log", &tracing::Level::ERROR), "an explicit choice is kept");
    }

    #[test]
    fn bad_filters_name_their_origin() {
        let err = parse_filter("my_bot=loud", "config key `logging.level`").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid log filter `my_bot=loud` from config key `logging.level`: error parsing level filter: \
             expected one of \"off\", \"error\", \"warn\", \"info\", \"debug\", \"trace\", or a number 0-5"
        );
    }
}
