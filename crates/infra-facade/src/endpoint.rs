//! [`MetricsEndpoint`]: `GET /metrics` over HTTP/1.1, one response per connection.
//!
//! Served here rather than by the exporter's own listener so that an endpoint can be closed
//! (its port released) and so that several stacks in one process can each have one: they all
//! render the one process-wide recorder.

use std::{fmt, net::SocketAddr, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Mutex,
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

use crate::{FacadeError, PrometheusRecorder};

/// The largest request head read; Prometheus sends a few hundred bytes.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request, and the whole exchange at most.
const CONNECTION_LIMIT: Duration = Duration::from_secs(10);
/// How long the refresh before a scrape may take; the page is served after it either way.
const REFRESH_LIMIT: Duration = Duration::from_secs(3);

/// Work run before each scrape renders the page (pinging Redis, reading the fleet), so the
/// gauges it sets are current.
pub type BeforeScrape = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// A running Prometheus endpoint: `GET /metrics` renders the process's [`PrometheusRecorder`]
/// in the text format (version 0.0.4); `GET /` says where the metrics are; anything else is a
/// 404 (unknown path), 405 (not GET or HEAD) or 400 (not HTTP).
///
/// Stops on [`close`](Self::close) or when dropped, releasing its port.
pub struct MetricsEndpoint {
    local_addr: SocketAddr,
    cancel: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for MetricsEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsEndpoint").field("local_addr", &self.local_addr).finish_non_exhaustive()
    }
}

impl MetricsEndpoint {
    /// Listens on `listen` (port 0 picks a free port: see [`local_addr`](Self::local_addr)) and
    /// serves `recorder`. Fails with [`FacadeError::Metrics`] naming the address if it cannot
    /// listen there. Needs a tokio runtime.
    pub async fn start(listen: SocketAddr, recorder: PrometheusRecorder) -> Result<Self, FacadeError> {
        Self::start_with(listen, recorder, None).await
    }

    /// Like [`start`](Self::start), running `before_scrape` (bounded to 3 s) before each page
    /// is rendered.
    pub async fn start_with(
        listen: SocketAddr,
        recorder: PrometheusRecorder,
        before_scrape: Option<BeforeScrape>,
    ) -> Result<Self, FacadeError> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| FacadeError::Metrics { listen: Some(listen), message: format!("cannot listen: {e}") })?;
        let local_addr = listener.local_addr().map_err(|e| FacadeError::Metrics {
            listen: Some(listen),
            message: format!("cannot read the bound address: {e}"),
        })?;
        let cancel = CancellationToken::new();
        let task = tokio::spawn(serve(listener, recorder, before_scrape, cancel.clone()));
        tracing::info!(target: "infra_facade", address = %local_addr, "serving metrics on /metrics");
        Ok(Self { local_addr, cancel, task: Mutex::new(Some(task)) })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops listening and waits until the port is released. Scrapes in progress finish on
    /// their own (each is bounded). Closing twice is harmless.
    pub async fn close(&self) {
        self.cancel.cancel();
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn serve(
    listener: TcpListener,
    recorder: PrometheusRecorder,
    before_scrape: Option<BeforeScrape>,
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let (recorder, before_scrape) = (recorder.clone(), before_scrape.clone());
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(CONNECTION_LIMIT, answer(stream, recorder, before_scrape)).await;
                });
            }
            Err(error) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!(target: "infra_facade", %error, "metrics endpoint cannot accept a connection");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
}

/// Reads one request head and writes one response.
async fn answer(mut stream: TcpStream, recorder: PrometheusRecorder, before_scrape: Option<BeforeScrape>) {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0_u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() >= MAX_REQUEST_HEAD {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"request too large\n",
                true,
            )
            .await;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, target) = match (parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), Some(version)) if version.starts_with(b"HTTP/1.") => (method, target),
        _ => return respond(&mut stream, "400 Bad Request", "text/plain", b"not an HTTP/1.x request\n", true).await,
    };
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    let with_body = method == b"GET";
    if !with_body && method != b"HEAD" {
        return respond(&mut stream, "405 Method Not Allowed", "text/plain", b"only GET and HEAD\n", true).await;
    }
    match path {
        b"/metrics" => {
            if let Some(before_scrape) = before_scrape {
                let _ = tokio::time::timeout(REFRESH_LIMIT, before_scrape()).await;
            }
            let page = recorder.render();
            respond(&mut stream, "200 OK", "text/plain; version=0.0.4; charset=utf-8", page.as_bytes(), with_body)
                .await;
        }
        b"/" => respond(&mut stream, "200 OK", "text/plain", b"infra: metrics at /metrics\n", with_body).await,
        _ => {
            respond(&mut stream, "404 Not Found", "text/plain", b"not found: metrics are at /metrics\n", with_body)
                .await
        }
    }
}

async fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8], with_body: bool) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        body.len(),
        if status.starts_with("405") { "Allow: GET, HEAD\r\n" } else { "" },
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    if with_body && stream.write_all(body).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
}
