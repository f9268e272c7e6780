//! The Redis subscriptions a bus holds for its local ones: counted per channel (`SUBSCRIBE`, or
//! `SSUBSCRIBE` on a cluster; and one shared `PSUBSCRIBE ns:*` for every pattern), made when the first local subscription needs one,
//! released with the last, and fully undone when making one fails.

use std::{
    collections::HashMap,
    sync::{Arc, Weak},
};

use infra_redis::fred::{
    error::Error as FredError,
    prelude::{ClientLike, Options, PubsubInterface},
    types::{ClusterHash, Value},
    util::redis_keyslot,
};
use tokio::sync::oneshot;

use super::{Inner, RedisBus};
use crate::{EventsError, Result, SubscribeOptions, Topic, bus::Attached};

/// Local subscriptions per Redis channel, and how many pattern subscriptions exist.
#[derive(Debug, Default)]
pub(super) struct Refs {
    channels: HashMap<String, usize>,
    patterns: usize,
}

impl Refs {
    /// Counts one more subscription to `topic`; true if it is the first of its Redis
    /// subscription.
    fn add(&mut self, topic: &Topic) -> bool {
        let count = match topic {
            Topic::Channel(channel) => self.channels.entry(channel.clone()).or_default(),
            Topic::Pattern(_) => &mut self.patterns,
        };
        *count += 1;
        *count == 1
    }

    /// Counts one subscription to `topic` fewer; true if it was the last of its Redis
    /// subscription.
    fn remove(&mut self, topic: &Topic) -> bool {
        match topic {
            Topic::Channel(channel) => match self.channels.get_mut(channel) {
                Some(count) if *count > 1 => {
                    *count -= 1;
                    false
                }
                Some(_) => {
                    self.channels.remove(channel);
                    true
                }
                None => false,
            },
            Topic::Pattern(_) if self.patterns == 0 => false,
            Topic::Pattern(_) => {
                self.patterns -= 1;
                self.patterns == 0
            }
        }
    }
}

impl Inner {
    /// Counts a subscription to `topic` and, for the first of its Redis subscription,
    /// subscribes and waits until Redis has processed it. On failure the count and the Redis
    /// subscription are as they were before the call.
    async fn redis_subscribe(&self, topic: &Topic) -> Result<()> {
        // Held across the commands it decides, so they reach Redis in the order the counts
        // changed (an unsubscribe from a drop never overtakes a later subscribe).
        let mut refs = self.refs.lock().await;
        if !refs.add(topic) {
            return Ok(());
        }
        let subscriber = self.subscriber.client();
        let subscribe = async {
            match topic {
                // fred waits for SSUBSCRIBE's reply (following a MOVED to the shard's node).
                Topic::Channel(channel) if self.clustered => subscriber.ssubscribe(self.redis_channel(channel)).await,
                Topic::Channel(channel) => subscriber.subscribe(self.redis_channel(channel)).await,
                Topic::Pattern(_) => subscriber.psubscribe(self.all_channels()).await,
            }
        };
        // fred reports a SUBSCRIBE done as soon as it is written and drops Redis's reply, so a
        // refusal (an ACL `NOPERM`) is read as the reply of the next command waiting for one:
        // this PING, queued right behind it (both are queued in the first poll of `join!`). The
        // PING is also answered only after Redis processed the SUBSCRIBE, so events published
        // from now on are received. On a cluster fred sends every classic (P)SUBSCRIBE to the
        // node of its client ID's hash slot: the PING goes there too.
        let ping = async {
            if self.clustered {
                let slot = redis_keyslot(subscriber.id().as_bytes());
                let options = Options { cluster_hash: Some(ClusterHash::Custom(slot)), ..Options::default() };
                subscriber.with_options(&options).ping::<Value>(None).await
            } else {
                subscriber.ping::<Value>(None).await
            }
        };
        let (subscribed, confirmed) = tokio::join!(subscribe, ping);
        let Err(error) = subscribed.and(confirmed.map(drop)) else { return Ok(()) };
        refs.remove(topic);
        // A SUBSCRIBE that timed out or lost its connection may still be applied, and fred
        // already tracks it for resubscription: undo both (UNSUBSCRIBE needs no permission).
        if let Err(undo) = self.redis_unsubscribe(topic).await {
            tracing::warn!(target: "infra_events", topic = %topic, error = %infra_redis::Failure::from(undo), "cannot undo a failed redis subscription");
        }
        Err(self.subscribe_error(topic, error))
    }

    async fn redis_unsubscribe(&self, topic: &Topic) -> std::result::Result<(), FredError> {
        let subscriber = self.subscriber.client();
        match topic {
            Topic::Channel(channel) if self.clustered => subscriber.sunsubscribe(self.redis_channel(channel)).await,
            Topic::Channel(channel) => subscriber.unsubscribe(self.redis_channel(channel)).await,
            Topic::Pattern(_) => subscriber.punsubscribe(self.all_channels()).await,
        }
    }

    /// Undoes a successful [`Inner::redis_subscribe`] in the background: it runs from `Drop`,
    /// possibly outside the runtime (then on the runtime the subscriber connected from).
    fn release(self: &Arc<Self>, topic: Topic) {
        let current = tokio::runtime::Handle::try_current().ok();
        let Some(runtime) = current.or_else(|| self.listening.get().cloned()) else { return };
        let inner = Arc::clone(self);
        runtime.spawn(async move {
            let mut refs = inner.refs.lock().await;
            if refs.remove(&topic) && !inner.subscriber.is_closed() {
                let _ = inner.redis_unsubscribe(&topic).await;
            }
        });
    }
}

impl RedisBus {
    /// Attaches a local subscription and makes sure Redis sends its messages. The Redis side
    /// runs in a task of its own, so that a caller who stops waiting (a timeout around
    /// `subscribe`) still leaves the subscription either made and released again, or undone.
    pub(super) async fn attach(&self, topic: Topic, options: SubscribeOptions) -> Result<Attached> {
        options.check("redis", false)?;
        self.start_subscriber().await?;
        let attached = self.inner.local.attach(topic.clone(), options)?;
        let inner = Arc::clone(&self.inner);
        let (reply, outcome) = oneshot::channel();
        tokio::spawn(async move {
            let result = match inner.redis_subscribe(&topic).await {
                Ok(()) => Ok(releasing(attached, Arc::downgrade(&inner), topic)),
                Err(error) => {
                    detach(attached);
                    Err(error)
                }
            };
            // Nobody waits for it any more: undo it.
            if let Err(Ok(attached)) = reply.send(result) {
                detach(attached);
            }
        });
        outcome.await.unwrap_or_else(|_| {
            let reason = "the subscribe task ended before it answered (the runtime is shutting down)";
            Err(EventsError::Connection { url: self.inner.url.clone(), source: reason.into() })
        })
    }
}

/// `attached`, whose detach also releases its Redis subscription.
fn releasing(mut attached: Attached, inner: Weak<Inner>, topic: Topic) -> Attached {
    let local = std::mem::replace(&mut attached.detach, Box::new(|| {}));
    attached.detach = Box::new(move || {
        local();
        if let Some(inner) = inner.upgrade() {
            inner.release(topic);
        }
    });
    attached
}

/// Removes `attached` from its bus now.
fn detach(mut attached: Attached) {
    let detach = std::mem::replace(&mut attached.detach, Box::new(|| {}));
    detach();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Pattern;

    #[test]
    fn counts_say_when_redis_must_subscribe_and_unsubscribe() {
        let mut refs = Refs::default();
        let (ticks, all) = (Topic::Channel("ticks".into()), Topic::Pattern(Pattern::new("t*")));
        assert!(refs.add(&ticks));
        assert!(!refs.add(&ticks));
        assert!(refs.add(&all));
        assert!(!refs.remove(&ticks));
        assert!(refs.remove(&ticks));
        assert!(!refs.remove(&ticks), "nothing left to release");
        assert!(refs.remove(&all));
        assert!(!refs.remove(&all), "the pattern count never goes below zero");
        assert!(refs.add(&ticks), "a released channel subscribes again");
    }
}
