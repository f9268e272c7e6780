//! Prometheus exposition: the process's recorder (installed once, before any component is
//! built, since components resolve their metric handles when they are built) and the Redis
//! health gauges the endpoint refreshes on each scrape.
//!
//! The page itself is served by [`MetricsEndpoint`](crate::MetricsEndpoint).

use std::{
    sync::{Mutex, OnceLock, PoisonError},
    time::{Duration, Instant},
};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::FacadeError;

/// How often the recorder folds recent histogram samples into its totals, whether or not
/// anyone scrapes (so an unscraped process does not accumulate samples).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Latency buckets for `infra_state_operation_duration_seconds`, in seconds: a loopback round
/// trip is ~0.1 ms, a slow remote Redis ~10 ms, anything past 1 s is an outage.
const LATENCY_BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// The process's Prometheus recorder, installed as the global `metrics` recorder by
/// [`PrometheusRecorder::install`]. Cloning it is cheap; every clone renders the same registry.
#[derive(Clone)]
pub struct PrometheusRecorder {
    handle: PrometheusHandle,
}

impl std::fmt::Debug for PrometheusRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusRecorder").finish_non_exhaustive()
    }
}

/// What the first install attempt ended with: every later call returns the same.
static INSTALLED: OnceLock<Result<PrometheusRecorder, String>> = OnceLock::new();
static INSTALLING: Mutex<()> = Mutex::new(());

impl PrometheusRecorder {
    /// Installs the Prometheus recorder as the process's global `metrics` recorder, or returns
    /// the one already installed by an earlier call. Fails with [`FacadeError::Metrics`] if
    /// another recorder (not this one) was installed first: the process's metrics would go
    /// there, and this endpoint would serve nothing.
    ///
    /// Install it before building the components whose metrics it should see
    /// ([`Infrastructure::create`](crate::Infrastructure::create) does).
    pub fn install() -> Result<Self, FacadeError> {
        let _one_at_a_time = INSTALLING.lock().unwrap_or_else(PoisonError::into_inner);
        let installed = INSTALLED.get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("infra_state_operation_duration_seconds".to_owned()),
                    LATENCY_BUCKETS,
                )
                .map_err(|e| e.to_string())?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).map_err(|_| {
                "another metrics recorder is already installed in this process (install none before the \
                 infrastructure, or leave `metrics.listen` unset and serve your own)"
                    .to_owned()
            })?;
            let upkeep = handle.clone();
            // A thread rather than a task: the recorder lives as long as the process, whatever
            // runtimes come and go.
            let spawned = std::thread::Builder::new().name("infra-metrics-upkeep".into()).spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
            if let Err(error) = spawned {
                tracing::warn!(target: "infra_facade", %error, "no metrics upkeep thread: histograms are folded on each scrape only");
            }
            Ok(Self { handle })
        });
        installed.clone().map_err(|message| FacadeError::Metrics { listen: None, message })
    }

    /// The recorder, if [`install`](Self::install) succeeded in this process.
    pub fn installed() -> Option<Self> {
        INSTALLED.get().and_then(|installed| installed.as_ref().ok()).cloned()
    }

    /// Every metric recorded so far, in the Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }
}

/// Records the outcome of a ping of `component`'s Redis (`state` or `events`):
/// `infra_redis_up` (1 or 0) and, when it answered, `infra_redis_ping_latency_seconds`.
pub fn record_redis_ping(component: &'static str, answered: bool, took: Duration) {
    // Described once per process, not per ping (each scrape pings).
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    DESCRIBED.call_once(|| {
        metrics::describe_gauge!(
            "infra_redis_up",
            "1 when the last ping of the component's Redis answered, 0 otherwise"
        );
        metrics::describe_gauge!(
            "infra_redis_ping_latency_seconds",
            metrics::Unit::Seconds,
            "round trip of the last ping of the component's Redis"
        );
    });
    metrics::gauge!("infra_redis_up", "component" => component).set(if answered { 1.0 } else { 0.0 });
    if answered {
        metrics::gauge!("infra_redis_ping_latency_seconds", "component" => component).set(took.as_secs_f64());
    }
}

/// Runs `ping` bounded by `limit` and, for a Redis backend, records how it went with
/// [`record_redis_ping`] (a timeout counts as down). Returns its error chain on failure.
pub(crate) async fn recorded_ping<T, E: std::error::Error>(
    component: &'static str,
    redis: bool,
    limit: Duration,
    ping: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    let started = Instant::now();
    let result = match tokio::time::timeout(limit, ping).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(error)) => Err(crate::infrastructure::error_chain(&error)),
        Err(_) => Err(format!("no answer within {limit:?}")),
    };
    if redis {
        record_redis_ping(component, result.is_ok(), started.elapsed());
    }
    result
}
