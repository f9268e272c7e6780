//! A client that connects on first use within a bound, and that can be closed.

use std::{
    collections::HashSet,
    fmt,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use fred::{
    prelude::{Client, ClientLike, EventInterface},
    types::ConnectHandle,
};
use infra_config::RedisUrl;
use metrics::Counter;
use tokio::runtime::Handle;

use crate::{Failure, RedisError};

/// How often a caller waiting for the first connection looks at its state: fred's connect
/// event can fire between its state check and its subscription, so it is never waited on alone.
const CONNECT_POLL: Duration = Duration::from_millis(5);

/// A fred client with the product's connection discipline.
///
/// - Nothing connects before [`Connection::connect`]. A call that finds no connection starts an
///   attempt and waits for it at most the connect timeout; a refused or rejected attempt
///   (wrong password, `NOPERM`) fails with [`RedisError::Connect`] carrying what the server
///   said, and the next call tries again. Once connected, fred re-establishes lost connections
///   in the background (100 ms doubling to 2 s).
/// - [`Connection::close`] sends `QUIT` after the commands already queued, waits (bounded) for
///   the connection task to end, and makes every later [`Connection::connect`] fail with
///   [`RedisError::Closed`].
/// - Dropping a connection that was not closed sends `QUIT` in the background on the runtime it
///   connected from, even when dropped outside that runtime (or aborts the connection task if
///   that runtime is gone), so no task goes on reconnecting forever.
/// - Every time fred re-establishes a connection to a server it had connected to before, the
///   connection counts a reconnect: [`Connection::reconnects`], and the metrics counter given
///   to [`Connection::count_reconnects`] if any.
pub struct Connection<C: RedisClient = Client> {
    client: C,
    url: String,
    connect_timeout: Duration,
    /// Connected once; from then on fred reconnects by itself. The hot path reads only this.
    ready: AtomicBool,
    closed: AtomicBool,
    control: Mutex<Control>,
    /// The last connection error fred reported, to explain a connect that timed out (a wrong
    /// password is retried like a network error and would otherwise only show as a timeout).
    last_error: Arc<Mutex<Option<Failure>>>,
    reconnects: Arc<Reconnects>,
}

/// Reconnects seen so far, and where else to count them.
struct Reconnects {
    count: AtomicU64,
    counter: Mutex<Counter>,
}

impl Default for Reconnects {
    fn default() -> Self {
        Self { count: AtomicU64::new(0), counter: Mutex::new(Counter::noop()) }
    }
}

impl Reconnects {
    fn add_one(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.counter.lock().unwrap_or_else(PoisonError::into_inner).increment(1);
    }
}

#[derive(Default)]
struct Control {
    /// fred's connection task, once started; a new one is started if it ended unconnected.
    task: Option<ConnectHandle>,
    /// The runtime the task runs on, so a drop outside it can still stop it.
    runtime: Option<Handle>,
    listening_for_errors: bool,
}

/// The fred clients a [`Connection`] can hold: [`Client`], and fred's subscriber client.
pub trait RedisClient: ClientLike + EventInterface + Clone + Send + Sync + 'static {}

impl<C: ClientLike + EventInterface + Clone + Send + Sync + 'static> RedisClient for C {}

impl<C: RedisClient> fmt::Debug for Connection<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.url)
            .field("ready", &self.ready.load(Ordering::Relaxed))
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<C: RedisClient> Connection<C> {
    /// Wraps a client built for `url` (see [`crate::client`]). Does not connect.
    pub fn new(client: C, url: &RedisUrl, connect_timeout: Duration) -> Self {
        Self {
            client,
            url: url.redacted(),
            connect_timeout,
            ready: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            control: Mutex::default(),
            last_error: Arc::default(),
            reconnects: Arc::default(),
        }
    }

    /// Also adds every reconnect to `counter` (a `metrics` counter the caller resolved, such as
    /// `infra_state_reconnects_total{backend="redis"}`). Call it before the first connect.
    #[must_use]
    pub fn count_reconnects(self, counter: Counter) -> Self {
        *self.reconnects.counter.lock().unwrap_or_else(PoisonError::into_inner) = counter;
        self
    }

    /// Times a connection to a server was re-established after it had been connected once
    /// (the first connection to each server is not a reconnect).
    pub fn reconnects(&self) -> u64 {
        self.reconnects.count.load(Ordering::Relaxed)
    }

    /// The client. Use it after [`Connection::connect`] succeeded (or [`Connection::is_ready`]).
    pub fn client(&self) -> &C {
        &self.client
    }

    /// The URL, redacted: what errors and logs may show.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The bound on connecting.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Connected at least once and not closed: commands can be sent (fred queues them while it
    /// reconnects). One atomic load.
    #[inline]
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Whether [`Connection::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Connects if not yet connected, waiting at most the connect timeout.
    pub async fn connect(&self) -> Result<(), RedisError> {
        if self.is_ready() {
            return Ok(());
        }
        // Boxed so the rarely taken path does not weigh on the callers' futures.
        Box::pin(self.connect_slowly()).await
    }

    async fn connect_slowly(&self) -> Result<(), RedisError> {
        self.start()?;
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        loop {
            if self.client.is_connected() {
                // Under the lock `close()` takes, so a close can never land between the check
                // and the store and leave a closed connection marked ready.
                let _control = self.control.lock().unwrap_or_else(PoisonError::into_inner);
                if self.is_closed() {
                    return Err(RedisError::Closed { url: self.url.clone() });
                }
                self.ready.store(true, Ordering::Release);
                return Ok(());
            }
            let slice = (tokio::time::Instant::now() + CONNECT_POLL).min(deadline);
            match tokio::time::timeout_at(slice, self.client.wait_for_connect()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(RedisError::Connect { url: self.url.clone(), source: error.into() }),
                Err(_) if tokio::time::Instant::now() < deadline => {}
                Err(_) => {
                    let last = self.last_error.lock().unwrap_or_else(PoisonError::into_inner).take();
                    return Err(match last {
                        Some(source) => RedisError::Connect { url: self.url.clone(), source },
                        None => RedisError::ConnectTimeout { url: self.url.clone(), timeout: self.connect_timeout },
                    });
                }
            }
        }
    }

    /// Starts fred's connection task unless one is running.
    fn start(&self) -> Result<(), RedisError> {
        let mut control = self.control.lock().unwrap_or_else(PoisonError::into_inner);
        if self.is_closed() {
            return Err(RedisError::Closed { url: self.url.clone() });
        }
        if !control.listening_for_errors {
            control.listening_for_errors = true;
            let last_error = Arc::clone(&self.last_error);
            // Ends when the client quits, which closes fred's error channel.
            drop(self.client.on_error(move |(error, _server)| {
                *last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(Failure::from(error));
                async { Ok(()) }
            }));
            // fred announces every connection it establishes, the first ones included: a
            // server announced again is a reconnect. Subscribed before the first connect.
            let reconnects = Arc::clone(&self.reconnects);
            let seen = Mutex::new(HashSet::new());
            // Ends when the client quits, like the error listener.
            drop(self.client.on_reconnect(move |server| {
                if !seen.lock().unwrap_or_else(PoisonError::into_inner).insert(server) {
                    reconnects.add_one();
                }
                async { Ok(()) }
            }));
        }
        if control.task.as_ref().is_none_or(tokio::task::JoinHandle::is_finished) {
            *self.last_error.lock().unwrap_or_else(PoisonError::into_inner) = None;
            control.task = Some(self.client.connect());
            control.runtime = Handle::try_current().ok();
        }
        Ok(())
    }

    /// Sends `QUIT` after the commands already queued, waits (at most the connect timeout) for
    /// the connection to close, and refuses to connect again. Closing twice is harmless.
    pub async fn close(&self) {
        let task = {
            let mut control = self.control.lock().unwrap_or_else(PoisonError::into_inner);
            if self.closed.swap(true, Ordering::AcqRel) {
                return;
            }
            self.ready.store(false, Ordering::Release);
            control.task.take()
        };
        let Some(mut task) = task else { return };
        if !task.is_finished() {
            let _ = tokio::time::timeout(self.connect_timeout, self.client.quit()).await;
        }
        if tokio::time::timeout(self.connect_timeout, &mut task).await.is_err() {
            task.abort();
        }
    }
}

impl<C: RedisClient> Drop for Connection<C> {
    fn drop(&mut self) {
        if *self.closed.get_mut() {
            return;
        }
        let control = self.control.get_mut().unwrap_or_else(PoisonError::into_inner);
        let Some(task) = control.task.take() else { return };
        if task.is_finished() {
            return;
        }
        match control.runtime.take().or_else(|| Handle::try_current().ok()) {
            // `QUIT` lets the commands already queued finish, then ends reconnection.
            Some(runtime) => {
                let client = self.client.clone();
                runtime.spawn(async move {
                    let _ = client.quit().await;
                });
            }
            // No runtime left to run `QUIT` on: stop the connection task itself.
            None => task.abort(),
        }
    }
}
