//! The consumers a durable bus runs, so that `close` can stop them and wait until they ended.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::sync::watch;

/// The running consumers of a bus: their stop switches, and how many still run.
#[derive(Debug)]
pub(super) struct Registry {
    state: Mutex<State>,
    running: watch::Sender<usize>,
}

#[derive(Debug, Default)]
struct State {
    closed: bool,
    next: u64,
    stops: HashMap<u64, Arc<watch::Sender<bool>>>,
}

/// A consumer's place in the registry, given up when dropped (when its task ends, or when
/// subscribing fails before it starts).
#[derive(Debug)]
pub(super) struct Registered {
    registry: Arc<Registry>,
    id: u64,
}

impl Registry {
    /// An open registry with no consumer.
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self { state: Mutex::default(), running: watch::Sender::new(0) })
    }

    /// Adds a consumer that `stop` stops; `None` once the bus is closed.
    pub(super) fn register(self: &Arc<Self>, stop: Arc<watch::Sender<bool>>) -> Option<Registered> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.closed {
            return None;
        }
        let id = state.next;
        state.next += 1;
        state.stops.insert(id, stop);
        self.running.send_modify(|running| *running += 1);
        Some(Registered { registry: Arc::clone(self), id })
    }

    /// Refuses new consumers, stops the running ones and waits until each has drained, cleaned
    /// up and ended, at most `timeout`; returns how many were still running then.
    pub(super) async fn close(&self, timeout: std::time::Duration) -> usize {
        let stops: Vec<_> = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.closed = true;
            state.stops.drain().map(|(_, stop)| stop).collect()
        };
        for stop in stops {
            stop.send_replace(true);
        }
        let mut running = self.running.subscribe();
        let _ = tokio::time::timeout(timeout, running.wait_for(|running| *running == 0)).await;
        *running.borrow()
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.registry.state.lock().unwrap_or_else(PoisonError::into_inner).stops.remove(&self.id);
        self.registry.running.send_modify(|running| *running -= 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn close_stops_every_consumer_and_waits_for_them() {
        let registry = Registry::new();
        let (first, second) = (Arc::new(watch::Sender::new(false)), Arc::new(watch::Sender::new(false)));
        let one = registry.register(Arc::clone(&first)).unwrap();
        let two = registry.register(Arc::clone(&second)).unwrap();
        drop(one);
        let mut stopped = second.subscribe();
        let consumer = tokio::spawn(async move {
            let _ = stopped.wait_for(|stop| *stop).await;
            drop(two);
        });
        assert_eq!(registry.close(std::time::Duration::from_secs(5)).await, 0);
        assert!(*second.borrow() && !*first.borrow(), "only the running consumer is told to stop");
        consumer.await.unwrap();
        assert_eq!(*registry.running.borrow(), 0);
        assert!(registry.register(Arc::new(watch::Sender::new(false))).is_none(), "closed");
    }
}
