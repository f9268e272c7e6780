//! What a publish returns: [`PublishFuture`] and its report, [`Published`].

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use futures::future::BoxFuture;

use crate::{EventId, Position, Result};

/// What [`EventBus::publish`](crate::EventBus::publish) reports. Each field means the same on
/// every backend; a backend that cannot know a figure says `None` rather than something else:
///
/// | backend | [`delivered_to`] | [`redis_receivers`] | [`position`] |
/// |---|---|---|---|
/// | memory | `Some(n)` | `None` | `None` |
/// | Redis pub/sub | `None`: each subscribing process routes it later | `Some(n)`: the reply of `PUBLISH` | `None` |
/// | durable (streams) | `None`: consumer groups read it later | `None` | `Some(id)`: its stream entry |
///
/// [`delivered_to`]: Published::delivered_to
/// [`redis_receivers`]: Published::redis_receivers
/// [`position`]: Published::position
///
/// So "did any subscription get it?" is `delivered_to` on the memory bus, `redis_receivers > 0`
/// on Redis pub/sub (0: nobody was listening, the event is gone), and on the durable bus the
/// event is stored whoever listens (`position`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// The event's ID.
    pub id: EventId,
    /// Subscriptions of this bus the event was queued for (a subscription whose queue was full
    /// and that drops is not counted; one that blocks is, once there was room). Known on the
    /// memory bus only.
    pub delivered_to: Option<usize>,
    /// Redis pub/sub: what `PUBLISH` returned, the messages Redis sent for the event: one per
    /// connection subscribed to its channel and one per matching pattern subscription, across
    /// processes (a `RedisBus` holds one subscriber connection, with one `SUBSCRIBE` per channel
    /// and one `PSUBSCRIBE` for all its pattern subscriptions, whatever their number; other
    /// clients such as `redis-cli` count too). `None` on the other backends.
    pub redis_receivers: Option<usize>,
    /// Durable mode: where the event is stored in its stream, as delivered in
    /// [`Envelope::position`](crate::Envelope::position) (replay from it with
    /// [`Start::After`](crate::Start::After)). `None` on the ephemeral backends.
    pub position: Option<Position>,
}

impl Published {
    /// A report of the event `id` with every figure unknown (`None`), for a backend to fill in.
    pub fn new(id: EventId) -> Self {
        Self { id, delivered_to: None, redis_receivers: None, position: None }
    }
}

/// What [`EventBus::publish`](crate::EventBus::publish) returns: a boxed future, or for the
/// memory bus an unboxed one, so an in-process publish allocates nothing for its future. Like
/// any future it does nothing until awaited: the event, with the correlation ID current at that
/// point, is made then.
#[must_use = "futures do nothing unless awaited"]
pub struct PublishFuture<'a>(PublishKind<'a>);

enum PublishKind<'a> {
    Boxed(BoxFuture<'a, Result<Published>>),
    #[cfg(feature = "memory")]
    Memory(crate::memory::Publish<'a>),
}

impl<'a> PublishFuture<'a> {
    /// Boxes any future.
    pub fn new(future: impl Future<Output = Result<Published>> + Send + 'a) -> Self {
        Self(PublishKind::Boxed(Box::pin(future)))
    }

    #[cfg(feature = "memory")]
    pub(crate) fn memory(publish: crate::memory::Publish<'a>) -> Self {
        Self(PublishKind::Memory(publish))
    }
}

impl Future for PublishFuture<'_> {
    type Output = Result<Published>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.0 {
            PublishKind::Boxed(future) => future.as_mut().poll(cx),
            #[cfg(feature = "memory")]
            PublishKind::Memory(publish) => match publish.poll_publish() {
                Ok(published) => Poll::Ready(Ok(published)),
                // Some blocking subscriber's queue is full: wait for room.
                Err(waiting) => {
                    this.0 = PublishKind::Boxed(waiting);
                    Pin::new(this).poll(cx)
                }
            },
        }
    }
}

impl fmt::Debug for PublishFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublishFuture").finish_non_exhaustive()
    }
}
