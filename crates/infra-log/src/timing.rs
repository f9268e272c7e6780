//! Performance helpers: time a future or a block and log how long it took and how it ended.

use std::{borrow::Cow, fmt::Display, future::Future, time::Duration};

use tokio::time::Instant;

/// How an operation ended, for [`Timed`]: `Result`s are `error` when `Err`, `()` is `ok`.
pub trait Outcome {
    /// `None` for success, or the error's message.
    fn error_message(&self) -> Option<String>;
}

impl<T, E: Display> Outcome for Result<T, E> {
    fn error_message(&self) -> Option<String> {
        self.as_ref().err().map(ToString::to_string)
    }
}

impl Outcome for () {
    fn error_message(&self) -> Option<String> {
        None
    }
}

/// Times an operation and logs one line when it ends, with target `infra_log::timing` and
/// fields `operation`, `duration_ms`, `outcome` (`ok` or `error`) and, on error, `error`.
///
/// The line is INFO, or WARN when the operation failed or took longer than the
/// [`slow_after`](Timed::slow_after) threshold (then with `slow = true` and `threshold_ms`).
/// Durations come from tokio's clock, so tests on a paused clock see exact values.
///
/// ```
/// use std::time::Duration;
/// use infra_log::timed;
///
/// # async fn fetch_price() -> Result<f64, std::io::Error> { Ok(1.0) }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), std::io::Error> {
/// let price = timed("fetch_price").slow_after(Duration::from_millis(250)).run(fetch_price()).await?;
/// let total = timed("sum").run_blocking(|| Ok::<_, std::io::Error>(price * 2.0))?;
/// # let _ = total; Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a timer does nothing until `run` or `run_blocking`"]
pub struct Timed {
    name: Cow<'static, str>,
    slow_after: Option<Duration>,
}

/// Starts describing a timed operation called `name`.
pub fn timed(name: impl Into<Cow<'static, str>>) -> Timed {
    Timed { name: name.into(), slow_after: None }
}

impl Timed {
    /// Logs a WARN when the operation takes longer than `threshold`.
    pub fn slow_after(mut self, threshold: Duration) -> Self {
        self.slow_after = Some(threshold);
        self
    }

    /// Runs and times `future`.
    pub async fn run<F>(self, future: F) -> F::Output
    where
        F: Future,
        F::Output: Outcome,
    {
        let started = Instant::now();
        let output = future.await;
        self.log(started.elapsed(), output.error_message());
        output
    }

    /// Runs and times a synchronous closure.
    pub fn run_blocking<T: Outcome>(self, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let output = f();
        self.log(started.elapsed(), output.error_message());
        output
    }

    fn log(&self, elapsed: Duration, error: Option<String>) {
        let duration_ms = elapsed.as_secs_f64() * 1000.0;
        let operation = &*self.name;
        let slow = self.slow_after.is_some_and(|threshold| elapsed > threshold);
        let threshold_ms = self.slow_after.map(|t| t.as_secs_f64() * 1000.0);
        match (error, slow) {
            (Some(error), _) => tracing::warn!(
                target: "infra_log::timing",
                operation, duration_ms, outcome = "error", error, slow, threshold_ms,
                "{operation} failed after {duration_ms:.3} ms"
            ),
            (None, true) => tracing::warn!(
                target: "infra_log::timing",
                operation, duration_ms, outcome = "ok", slow, threshold_ms,
                "{operation} was slow: {duration_ms:.3} ms"
            ),
            (None, false) => tracing::info!(
                target: "infra_log::timing",
                operation, duration_ms, outcome = "ok",
                "{operation} took {duration_ms:.3} ms"
            ),
        }
    }
}
