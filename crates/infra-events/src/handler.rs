//! [`Handler`]: what a subscription runs for each event, and the closures that are handlers.

use std::future::Future;

use futures::future::BoxFuture;

use crate::{BoxError, Envelope};

/// Handles events of one subscription. A returned error or a panic (in `handle` itself, in its
/// future, or while what it returned is dropped) is logged and counted; later events are still
/// handled.
///
/// Every `Fn(Envelope) -> impl Future` closure (or `async fn`) is a handler when its future is
/// `Send + 'static` and its output is `()` or `Result<(), E>` for any `E: Into<BoxError>`
/// (see [`IntoHandlerResult`]):
///
/// ```
/// use infra_events::{Envelope, Handler};
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("stale price")]
/// struct Stale;
///
/// fn handler(_: impl Handler) {}
///
/// handler(|event: Envelope| async move { println!("{}", event.channel) });
/// handler(|event: Envelope| async move {
///     if event.timestamp_ms == 0 {
///         return Err(Stale);
///     }
///     Ok(())
/// });
///
/// async fn on_tick(event: Envelope) -> Result<(), Stale> {
///     println!("{}", event.id);
///     Ok(())
/// }
/// handler(on_tick);
/// // An async closure is a handler when it captures nothing (its future cannot borrow the
/// // closure); otherwise clone what it needs in a plain closure, as above.
/// handler(async |_event: Envelope| -> Result<(), Stale> { Ok(()) });
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Handles one event.
    fn handle(&self, event: Envelope) -> BoxFuture<'static, Result<(), BoxError>>;
}

/// What a handler's future may return: `()` (the event is handled) or `Result<(), E>` for any
/// `E: Into<BoxError>` (an `Err` is logged and counted in
/// [`SubscriptionStats::errors`](crate::SubscriptionStats::errors); on the durable bus the event
/// is not acknowledged, so it is delivered again).
pub trait IntoHandlerResult {
    /// The outcome, with any error boxed.
    fn into_handler_result(self) -> Result<(), BoxError>;
}

impl IntoHandlerResult for () {
    fn into_handler_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<E: Into<BoxError>> IntoHandlerResult for Result<(), E> {
    fn into_handler_result(self) -> Result<(), BoxError> {
        self.map_err(Into::into)
    }
}

impl<F, Fut> Handler for F
where
    F: Fn(Envelope) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoHandlerResult,
{
    fn handle(&self, event: Envelope) -> BoxFuture<'static, Result<(), BoxError>> {
        let future = self(event);
        Box::pin(async move { future.await.into_handler_result() })
    }
}
