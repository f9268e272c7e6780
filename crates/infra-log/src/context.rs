//! Context binding in the product's vocabulary: bot, strategy, execution, workflow node, and any
//! extra key-values, stamped on every line logged inside.

use std::future::Future;

use tracing::{Instrument, Span};

use crate::correlation::{CorrelationId, scope};

/// Fields bound to every line logged inside [`LogContext::run`] or [`LogContext::in_scope`].
///
/// Contexts nest: a node context inside an execution context carries `node_id` plus the
/// execution's `execution_id`, `bot_id`, `strategy_id` and `correlation_id`. Create a context
/// inside its parent (as below): a span takes its parent's fields when it is created.
///
/// ```
/// use infra_log::LogContext;
///
/// # async fn place_order() {}
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// LogContext::execution("exec-42", "bot-1", "arb-btc")
///     .run(async {
///         tracing::info!(symbol = "BTC", "started"); // carries execution_id, bot_id, strategy_id, correlation_id
///         LogContext::node("price_check").run(place_order()).await;
///     })
///     .await;
///
/// // Any extra key-values, with the `bind!` macro (tracing's field syntax):
/// infra_log::bind!(venue = "binance", account = 7).in_scope(|| tracing::info!("connected"));
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a context does nothing until `run` or `in_scope`"]
pub struct LogContext {
    span: Span,
    correlation: Option<CorrelationId>,
}

impl LogContext {
    /// Binds `bot_id`.
    pub fn bot(bot_id: &str) -> Self {
        Self::from_span(tracing::error_span!(target: "infra_log", "bot", bot_id = %bot_id))
    }

    /// Binds `strategy_id`.
    pub fn strategy(strategy_id: &str) -> Self {
        Self::from_span(tracing::error_span!(target: "infra_log", "strategy", strategy_id = %strategy_id))
    }

    /// Binds `execution_id`, `bot_id` and `strategy_id`, and makes the execution ID the
    /// correlation ID. An execution ID that is not a valid correlation ID (see
    /// [`CorrelationId::parse`]) is still bound, and a fresh correlation ID is used instead.
    pub fn execution(execution_id: &str, bot_id: &str, strategy_id: &str) -> Self {
        let correlation = CorrelationId::parse(execution_id).unwrap_or_default();
        let span = tracing::error_span!(
            target: "infra_log",
            "execution",
            execution_id = %execution_id,
            bot_id = %bot_id,
            strategy_id = %strategy_id,
            correlation_id = %correlation,
        );
        Self { span, correlation: Some(correlation) }
    }

    /// Binds `node_id`, a step of a workflow.
    pub fn node(node_id: &str) -> Self {
        Self::from_span(tracing::error_span!(target: "infra_log", "node", node_id = %node_id))
    }

    /// Binds the fields of any span; see also [`bind!`](crate::bind).
    pub fn from_span(span: Span) -> Self {
        Self { span, correlation: None }
    }

    /// The span carrying the fields.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// Runs `future` inside the context.
    pub async fn run<F: Future>(self, future: F) -> F::Output {
        let future = future.instrument(self.span);
        match self.correlation {
            Some(id) => scope(id, future).await,
            None => future.await,
        }
    }

    /// Runs a synchronous closure inside the context. Its log lines carry the fields (and the
    /// correlation ID); [`crate::current_correlation_id`] is only set in async code.
    pub fn in_scope<T>(self, f: impl FnOnce() -> T) -> T {
        self.span.in_scope(f)
    }
}

/// Binds any key-values to a [`LogContext`], with tracing's field syntax:
/// `bind!(venue = "binance", account = 7, %order_id)`.
#[macro_export]
macro_rules! bind {
    ($($fields:tt)*) => {
        $crate::LogContext::from_span(::tracing::error_span!(target: "infra_log", "context", $($fields)*))
    };
}
