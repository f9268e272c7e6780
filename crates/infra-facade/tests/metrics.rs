//! The Prometheus endpoint of `[metrics] listen`: every component's metrics on one page, Redis
//! health refreshed on each scrape, HTTP edge cases, several endpoints in one process, close.
//!
//! The recorder is process-wide, so every test in this file shares it (as every stack in one
//! process would).

mod support;

use std::{net::SocketAddr, time::Duration};

use infra_facade::{
    FacadeError, Infrastructure,
    config::{Config, Environment, EventsConfig, MetricsConfig, StateConfig},
    prelude::*,
};
use infra_testkit::RedisServer;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

fn with_metrics(mut config: Config) -> Config {
    config.metrics = MetricsConfig::listen("127.0.0.1:0".parse().unwrap());
    config
}

/// Sends `request` and returns the status line and the body.
async fn http(addr: SocketAddr, request: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut response)).await.unwrap().unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

async fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http(addr, "GET /metrics HTTP/1.1\r\nHost: test\r\nAccept: text/plain\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    body
}

/// The value of the series `name` whose labels include every pair of `labels`.
fn sample(page: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    page.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, rest) = series.split_once('{').unwrap_or((series, ""));
        let all = labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        (series_name == name && all).then(|| value.parse().ok()).flatten()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_page_shows_every_component_after_a_halt() {
    let infra = Infrastructure::create(with_metrics(support::development("metrics-bot"))).await.unwrap();
    let addr = infra.metrics_addr().expect("an endpoint");
    assert!(addr.ip().is_loopback() && addr.port() != 0);

    infra.state().set_json("price:BTC", &50_000, None).await.unwrap();
    let _: Option<u64> = infra.state().get_json("price:BTC").await.unwrap();
    let _ = infra.state().incr("trades:today", 1).await.unwrap();
    infra.events().publish_json("prices", &serde_json::json!({"BTC": 1})).await.unwrap();
    let bot = infra.emergency().bot_scope().clone();
    infra.emergency().halt(bot, "alice", "drill").await.unwrap();

    let page = scrape(addr).await;
    let normal = [("bot", "metrics-bot"), ("state", "NORMAL")];
    let halt = [("bot", "metrics-bot"), ("state", "HALT")];
    assert_eq!(sample(&page, "infra_emergency_state", &halt), Some(1.0), "{page}");
    assert_eq!(sample(&page, "infra_emergency_state", &normal), Some(0.0), "{page}");
    assert_eq!(
        sample(&page, "infra_emergency_transitions_total", &[("scope", "bot:metrics-bot"), ("to", "HALT")]),
        Some(1.0),
        "{page}"
    );
    for (op, at_least) in [("set", 1.0), ("get", 1.0), ("increment", 1.0)] {
        let labels = [("op", op), ("backend", "memory"), ("outcome", "ok")];
        let seen = sample(&page, "infra_state_operations_total", &labels).unwrap_or_default();
        assert!(seen >= at_least, "{op}: {seen}\n{page}");
    }
    let published = [("backend", "memory"), ("outcome", "ok")];
    assert!(sample(&page, "infra_events_published_total", &published).unwrap_or_default() >= 1.0, "{page}");
    let closed = [("name", "state"), ("state", "closed")];
    assert_eq!(sample(&page, "infra_circuitbreaker_state", &closed), Some(1.0), "{page}");
    assert!(page.contains("# TYPE infra_emergency_state gauge"), "{page}");
    infra.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_only_get_and_head_on_metrics_and_close_releases_the_port() {
    let first = Infrastructure::create(with_metrics(support::development("endpoint-a"))).await.unwrap();
    let second = Infrastructure::create(with_metrics(support::development("endpoint-b"))).await.unwrap();
    let addr = first.metrics_addr().unwrap();
    assert_ne!(addr, second.metrics_addr().unwrap(), "two stacks in one process, two endpoints");

    let (status, body) = http(addr, "HEAD /metrics HTTP/1.1\r\n\r\n").await;
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", ""));
    let (status, _) = http(addr, "GET /metrics?x=1 HTTP/1.0\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let (status, body) = http(addr, "GET /secrets HTTP/1.1\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found", "{body}");
    let (status, _) = http(addr, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    let (status, _) = http(addr, "hello\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    let (status, _) = http(addr, &format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000))).await;
    assert_eq!(status, "HTTP/1.1 431 Request Header Fields Too Large");

    // The port is taken while it runs: a typed error naming the address.
    let mut taken = support::development("endpoint-c");
    taken.metrics = MetricsConfig::listen(addr);
    let err = Infrastructure::create(taken.clone()).await.unwrap_err();
    assert!(matches!(err, FacadeError::Metrics { listen: Some(a), .. } if a == addr), "{err:?}");
    assert!(err.to_string().starts_with(&format!("cannot serve metrics on {addr}: cannot listen")), "{err}");

    first.close().await.unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "closed: nothing listens");
    let third = Infrastructure::create(taken).await.expect("the port is free again");
    assert_eq!(third.metrics_addr(), Some(addr));
    let _ = scrape(second.metrics_addr().unwrap()).await;
    for infra in [second, third] {
        infra.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_up_and_ping_latency_follow_the_server_on_each_scrape() {
    let mut server = RedisServer::start().expect("redis-server must be installed");
    let url = server.url();
    let mut config = Config::for_env(Environment::Staging);
    config.logging.level = "warn".to_owned();
    let timeout = Duration::from_millis(300);
    config.state = StateConfig::redis(&url).unwrap().namespace("m").operation_timeout(timeout);
    config.events = EventsConfig::redis(&url).unwrap().namespace("m").operation_timeout(timeout);
    config.state.connect_timeout = Duration::from_millis(500);
    config.events.connect_timeout = Duration::from_millis(500);
    config.emergency.bot_id = "redis-metrics".to_owned();
    let infra = Infrastructure::create(with_metrics(config)).await.unwrap();
    let addr = infra.metrics_addr().unwrap();

    let page = scrape(addr).await;
    for component in ["state", "events"] {
        assert_eq!(sample(&page, "infra_redis_up", &[("component", component)]), Some(1.0), "{page}");
        let latency = sample(&page, "infra_redis_ping_latency_seconds", &[("component", component)]).unwrap();
        assert!(latency > 0.0 && latency < 1.0, "{latency}");
    }

    server.pause().unwrap();
    let page = scrape(addr).await;
    assert_eq!(sample(&page, "infra_redis_up", &[("component", "state")]), Some(0.0), "{page}");
    server.resume().unwrap();
    let page = scrape(addr).await;
    assert_eq!(sample(&page, "infra_redis_up", &[("component", "state")]), Some(1.0), "{page}");
    infra.close().await.unwrap();
}
