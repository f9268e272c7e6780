//! Coalescing of concurrent plain `get`s and `set`s made through `dyn StateStore` into one
//! `MGET` / `MSET` each.
//!
//! A `dyn` trait call has to box its future, and fred's command futures are large: under
//! load that allocation and copy cost more than the rest of a call (docs/benchmarks.md). When many
//! calls are in flight, plain gets and sets (no TTL, no `NX`) instead queue a small request for
//! a dispatcher task, which sends everything queued as one `MGET` and one `MSET` (several may be
//! in flight) and answers each caller through a oneshot channel. Concurrent calls have no order
//! between them, so answering them from one command is a valid order. A lone call goes straight
//! to fred: queueing would only add a task hop to its round trip. Standalone Redis only (on a
//! cluster, keys of one batch may live on different nodes).
//!
//! One difference from a lone `GET`: `MGET` answers nil, not `WRONGTYPE`, for a key holding a
//! non-string value, which only a foreign client can create under the store's namespace.

use std::sync::atomic::{AtomicUsize, Ordering};

use futures::{StreamExt, stream::FuturesUnordered};
use infra_redis::fred::{
    prelude::{Client, Error as FredError, KeysInterface, Value},
    types::{Key, Map},
};
use tokio::sync::{mpsc, oneshot};

/// Calls in flight from which plain gets and sets are coalesced.
const COALESCE_FROM: usize = 16;
/// Most keys in one `MGET` or `MSET`.
const MAX_BATCH: usize = 512;

/// What a caller receives: fred's reply for its key (`MSET` answers `OK` for all).
pub(super) type Reply = oneshot::Receiver<Result<Value, FredError>>;

/// Where a caller waits for its reply.
type Answer = oneshot::Sender<Result<Value, FredError>>;

enum Request {
    Get { key: Key, reply: Answer },
    Set { key: Key, value: Value, reply: Answer },
}

/// The queue to the dispatcher, and the count of calls in flight that decides who uses it.
#[derive(Default)]
pub(super) struct Coalescer {
    in_flight: AtomicUsize,
    queue: std::sync::OnceLock<mpsc::UnboundedSender<Request>>,
}

/// Counts a call in flight until dropped.
pub(super) struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Coalescer {
    /// Registers a call; says whether it should be coalesced (many others in flight).
    pub(super) fn enter(&self) -> (InFlight<'_>, bool) {
        let before = self.in_flight.fetch_add(1, Ordering::Relaxed);
        (InFlight(&self.in_flight), before >= COALESCE_FROM)
    }

    /// Queues a `GET`; `None` without a runtime for the dispatcher.
    pub(super) fn get(&self, client: &Client, key: Key) -> Option<Reply> {
        let (reply, receiver) = oneshot::channel();
        self.queue(client)?.send(Request::Get { key, reply }).ok()?;
        Some(receiver)
    }

    /// Queues a plain `SET`; `None` without a runtime for the dispatcher.
    pub(super) fn set(&self, client: &Client, key: Key, value: Value) -> Option<Reply> {
        let (reply, receiver) = oneshot::channel();
        self.queue(client)?.send(Request::Set { key, value, reply }).ok()?;
        Some(receiver)
    }

    fn queue(&self, client: &Client) -> Option<&mpsc::UnboundedSender<Request>> {
        if let Some(queue) = self.queue.get() {
            return Some(queue);
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        Some(self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            // Ends when the store, holding the sender, is dropped.
            runtime.spawn(dispatch(client.clone(), receiver));
            sender
        }))
    }
}

/// Sends what is queued, as `MGET`s and `MSET`s, until the store is gone.
async fn dispatch(client: Client, mut queue: mpsc::UnboundedReceiver<Request>) {
    let mut in_flight = FuturesUnordered::new();
    loop {
        tokio::select! {
            request = queue.recv() => {
                let Some(first) = request else { break };
                let mut gets = Vec::new();
                let mut sets = Vec::new();
                let mut next = Some(first);
                while let Some(request) = next.take() {
                    match request {
                        Request::Get { key, reply } => gets.push((key, reply)),
                        Request::Set { key, value, reply } => sets.push((key, value, reply)),
                    }
                    if gets.len().max(sets.len()) < MAX_BATCH {
                        next = queue.try_recv().ok();
                    }
                }
                if !gets.is_empty() {
                    in_flight.push(futures::future::Either::Left(mget(client.clone(), gets)));
                }
                if !sets.is_empty() {
                    in_flight.push(futures::future::Either::Right(mset(client.clone(), sets)));
                }
            }
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
        }
    }
    while in_flight.next().await.is_some() {}
}

async fn mget(client: Client, gets: Vec<(Key, Answer)>) {
    let (keys, replies): (Vec<Key>, Vec<_>) = gets.into_iter().unzip();
    match client.mget::<Vec<Value>, _>(keys).await {
        Ok(values) => {
            for (reply, value) in replies.into_iter().zip(values) {
                let _ = reply.send(Ok(value));
            }
        }
        Err(error) => {
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

async fn mset(client: Client, sets: Vec<(Key, Value, Answer)>) {
    let mut replies = Vec::with_capacity(sets.len());
    let mut pairs = Vec::with_capacity(sets.len());
    for (key, value, reply) in sets {
        pairs.push((key, value));
        replies.push(reply);
    }
    let result = match Map::try_from(pairs) {
        Ok(map) => client.mset(map).await.map(|()| Value::from("OK")),
        Err(error) => Err(error),
    };
    for reply in replies {
        let _ = reply.send(result.clone());
    }
}
