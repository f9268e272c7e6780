//! The dashboard over real HTTP on loopback, with a tiny HTTP/1.0 client: who may act, what a
//! refusal says, what the audit log and the snapshot show, the live stream, and a store that
//! is down (Redis through infra-testkit).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use infra_dashboard::{Dashboard, DashboardOptions};
use infra_facade::{
    Infrastructure,
    config::{Config, Environment, EventsConfig, StateConfig},
    emergency::{EmergencyState, Scope},
    events::EventBusExt,
};
use infra_testkit::RedisServer;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

const TOKEN: &str = "s3cret-token";
const LIMIT: Duration = Duration::from_secs(15);

fn development() -> Config {
    let mut config = Config::for_env(Environment::Development);
    config.logging.level = "warn".to_owned();
    config.emergency.bot_id = "dashboard".to_owned();
    config
}

async fn start(config: Config, token: Option<&str>) -> (Arc<Infrastructure>, Dashboard) {
    let infra = Arc::new(Infrastructure::create(config).await.expect("infrastructure"));
    let mut options = DashboardOptions::default().listen("127.0.0.1:0".parse().unwrap());
    if let Some(token) = token {
        options = options.token(token);
    }
    let dashboard = Dashboard::start(Arc::clone(&infra), options).await.expect("dashboard");
    (infra, dashboard)
}

async fn stop(infra: Arc<Infrastructure>, dashboard: Dashboard) {
    dashboard.close().await;
    infra.close().await.ok();
}

/// A response: status, headers (lowercase names) as text, body.
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    tokio::time::timeout(LIMIT, stream.read_to_string(&mut raw)).await.expect("a reply in time").unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a head");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
    Reply { status, head: head.to_ascii_lowercase(), body: body.to_owned() }
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, "GET", path, &[], "").await
}

/// A POST as the page sends it, with `extra` headers replacing or adding to its own.
async fn act(addr: SocketAddr, action: &str, body: Value, extra: &[(&str, &str)]) -> Reply {
    let bearer = format!("Bearer {TOKEN}");
    let origin = format!("http://{addr}");
    let mut headers: Vec<(&str, &str)> = vec![
        ("Content-Type", "application/json"),
        ("X-Infra-Dashboard", "1"),
        ("Authorization", bearer.as_str()),
        ("Origin", origin.as_str()),
        ("Sec-Fetch-Site", "same-origin"),
    ];
    for (name, value) in extra {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if !value.is_empty() {
            headers.push((name, value));
        }
    }
    send(addr, "POST", &format!("/api/emergency/{action}"), &headers, &body.to_string()).await
}

fn halt_body(scope: &str) -> Value {
    json!({"scope": scope, "reason": "drill: exchange incident", "operator": "alice"})
}

/// An SSE connection to `/api/stream`.
struct Stream {
    reader: BufReader<TcpStream>,
}

impl Stream {
    async fn open(addr: SocketAddr) -> Self {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(format!("GET /api/stream HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes()).await.unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        assert!(line.contains(" 200 "), "{line}");
        loop {
            line.clear();
            reader.read_line(&mut line).await.unwrap();
            if line.trim().is_empty() {
                break;
            }
            if line.to_ascii_lowercase().starts_with("content-type") {
                assert!(line.contains("text/event-stream"), "{line}");
            }
        }
        Self { reader }
    }

    /// The next event: its name and JSON data.
    async fn next(&mut self) -> (String, Value) {
        let (mut event, mut data) = (String::new(), String::new());
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(LIMIT, self.reader.read_line(&mut line)).await.expect("an event in time");
            assert!(read.unwrap() > 0, "the stream ended");
            let line = line.trim_end_matches(['\r', '\n']);
            if let Some(name) = line.strip_prefix("event:") {
                event = name.trim().to_owned();
            } else if let Some(chunk) = line.strip_prefix("data:") {
                data.push_str(chunk.strip_prefix(' ').unwrap_or(chunk));
            } else if line.is_empty() && !event.is_empty() {
                return (event, serde_json::from_str(&data).expect("JSON data"));
            }
        }
    }

    /// The next event named `name` (others skipped).
    async fn next_named(&mut self, name: &str) -> Value {
        loop {
            let (event, data) = self.next().await;
            if event == name {
                return data;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_need_the_right_token() {
    let (infra, dashboard) = start(development(), Some(TOKEN)).await;
    let addr = dashboard.local_addr();
    let missing = act(addr, "halt", halt_body("global"), &[("Authorization", "")]).await;
    assert_eq!(missing.status, 401, "{}", missing.body);
    assert!(missing.json()["error"].as_str().unwrap().contains("token is required"), "{}", missing.body);
    let wrong = act(addr, "halt", halt_body("global"), &[("Authorization", "Bearer s3cret-tokeN")]).await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    assert_eq!(wrong.json()["error"], "wrong token");
    assert!(!wrong.body.contains(TOKEN));
    assert_eq!(infra.emergency().state(), EmergencyState::Normal);
    stop(infra, dashboard).await;

    // No token configured: nothing changes, and the refusal says what to set.
    let (infra, dashboard) = start(development(), None).await;
    let refused = act(dashboard.local_addr(), "halt", halt_body("global"), &[]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.json()["error"].as_str().unwrap().contains("dashboard.token"), "{}", refused.body);
    assert_eq!(get(dashboard.local_addr(), "/api/snapshot").await.json()["actions_enabled"], false);
    assert_eq!(infra.emergency().state(), EmergencyState::Normal);
    stop(infra, dashboard).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_posts_are_refused() {
    let (infra, dashboard) = start(development(), Some(TOKEN)).await;
    let addr = dashboard.local_addr();
    for extra in [
        [("Origin", "http://evil.example"), ("Sec-Fetch-Site", "")],
        [("Origin", ""), ("Sec-Fetch-Site", "cross-site")],
        [("X-Infra-Dashboard", ""), ("Origin", "")],
    ] {
        let reply = act(addr, "halt", halt_body("global"), &extra).await;
        assert_eq!(reply.status, 403, "{extra:?}: {}", reply.body);
        assert!(reply.json()["error"].as_str().unwrap().contains("refused"), "{}", reply.body);
    }
    assert!(get(addr, "/").await.head.contains("x-frame-options: deny"));
    assert_eq!(infra.emergency().state(), EmergencyState::Normal);
    assert_eq!(infra.emergency().history(&Scope::Global, 10).await.unwrap().len(), 0);
    stop(infra, dashboard).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_scope_or_an_empty_reason_is_400() {
    let (infra, dashboard) = start(development(), Some(TOKEN)).await;
    let addr = dashboard.local_addr();
    for body in [
        json!({"scope": "everything", "reason": "r", "operator": "alice"}),
        json!({"scope": "bot:", "reason": "r", "operator": "alice"}),
        json!({"scope": "global", "reason": "  ", "operator": "alice"}),
        json!({"scope": "global", "reason": "r", "operator": ""}),
        json!({"scope": "global"}),
    ] {
        let reply = act(addr, "halt", body.clone(), &[]).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert!(reply.json()["error"].is_string());
    }
    assert_eq!(act(addr, "explode", halt_body("global"), &[]).await.status, 404);
    assert_eq!(infra.emergency().state(), EmergencyState::Normal);
    stop(infra, dashboard).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_is_audited_with_the_operator_and_pressing_twice_is_harmless() {
    let (infra, dashboard) = start(development(), Some(TOKEN)).await;
    let addr = dashboard.local_addr();
    let reply = act(addr, "halt", halt_body("global"), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let record = reply.json();
    assert_eq!((record["applied"].as_bool(), record["to"].as_str()), (Some(true), Some("HALT")));
    assert_eq!(record["actor"], "alice");
    assert_eq!(record["source"], "manual");
    assert_eq!(infra.emergency().state(), EmergencyState::Halt);

    let again = act(addr, "halt", halt_body("global"), &[]).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!((again.json()["applied"].as_bool(), again.json()["state"].as_str()), (Some(false), Some("HALT")));

    let snapshot = get(addr, "/api/snapshot").await.json();
    let banner = &snapshot["emergency"];
    assert_eq!((banner["state"].as_str(), banner["scope"].as_str()), (Some("HALT"), Some("global")));
    assert_eq!(
        (banner["actor"].as_str(), banner["reason"].as_str()),
        (Some("alice"), Some("drill: exchange incident"))
    );
    assert!(banner["since_ms"].as_u64().is_some_and(|ms| ms > 0));
    assert_eq!(snapshot["audit"].as_array().unwrap().len(), 1, "the second press wrote nothing");
    assert_eq!(snapshot["audit"][0]["actor"], "alice");
    assert_eq!(snapshot["errors"], json!([]));

    let audit = get(addr, "/api/audit?scope=global&limit=10").await;
    assert_eq!(audit.status, 200, "{}", audit.body);
    assert_eq!(audit.json()[0]["actor"], "alice");
    assert_eq!(get(addr, "/api/audit?scope=bot").await.json(), json!([]));
    assert_eq!(get(addr, "/api/audit?scope=sideways").await.status, 400);

    // A bot's scope, then the table's refusals.
    let bot = act(addr, "shutdown", halt_body("bot:arb-1"), &[]).await;
    assert_eq!((bot.status, bot.json()["to"].as_str()), (200, Some("SHUTDOWN")), "{}", bot.body);
    let bot_audit = get(addr, "/api/audit?bot=arb-1&scope=bot").await.json();
    assert_eq!((bot_audit[0]["scope"].as_str(), bot_audit[0]["actor"].as_str()), (Some("bot:arb-1"), Some("alice")));
    let refused = act(addr, "rearm", halt_body("global"), &[]).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    let resumed = act(addr, "resume", json!({"scope": "global", "reason": "drill over", "operator": "bob"}), &[]).await;
    assert_eq!((resumed.status, resumed.json()["actor"].as_str()), (200, Some("bob")), "{}", resumed.body);
    assert_eq!(infra.emergency().state(), EmergencyState::Normal);
    stop(infra, dashboard).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_never_changes_anything() {
    let (infra, dashboard) = start(development(), Some(TOKEN)).await;
    let addr = dashboard.local_addr();
    let page = get(addr, "/").await;
    assert_eq!(page.status, 200);
    for id in ["id=\"banner\"", "id=\"action-halt\"", "id=\"confirm\"", "id=\"fleet\"", "id=\"audit\""] {
        assert!(page.body.contains(id), "{id}");
    }
    assert!(page.body.contains("<title>[NORMAL] infra dashboard</title>"));
    assert!(get(addr, "/assets/app.js").await.head.contains("content-type: text/javascript"));
    assert!(get(addr, "/assets/app.css").await.head.contains("content-type: text/css"));
    for path in ["/api/snapshot", "/api/audit", "/api/emergency/halt", "/api/emergency/shutdown?scope=global"] {
        get(addr, path).await;
    }
    assert_eq!(get(addr, "/api/emergency/halt").await.status, 405);
    assert_eq!(get(addr, "/nowhere").await.status, 404);
    assert_eq!(infra.emergency().state(), EmergencyState::Normal);
    assert_eq!(infra.emergency().history(&Scope::Global, 10).await.unwrap().len(), 0);
    stop(infra, dashboard).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_starts_with_a_snapshot_and_carries_transitions_prices_and_executions() {
    let (infra, dashboard) = start(development(), Some(TOKEN)).await;
    let addr = dashboard.local_addr();
    let mut stream = Stream::open(addr).await;
    let (event, snapshot) = stream.next().await;
    assert_eq!(event, "snapshot");
    assert_eq!(snapshot["emergency"]["state"], "NORMAL");

    let reply = act(addr, "halt", halt_body("global"), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let transition = stream.next_named("emergency").await;
    assert_eq!((transition["to"].as_str(), transition["actor"].as_str()), (Some("HALT"), Some("alice")));
    assert_eq!(transition["emergency"]["state"], "HALT");

    infra.events().publish_json("trading_bot.prices.arb-1", &json!({"seq": 1, "price": 101.5})).await.unwrap();
    let price = stream.next_named("price").await;
    assert_eq!((price["symbol"].as_str(), price["price"].as_f64()), (Some("arb-1"), Some(101.5)));
    let execution = json!({"bot": "arb-1", "execution_id": "x-1", "at_ms": 1, "outcome": "rejected",
        "reason": "emergency: HALT", "side": "buy", "qty": 0.1, "price": 101.5});
    infra.events().publish_json("trading_bot.executions.arb-1", &execution).await.unwrap();
    let seen = stream.next_named("execution").await;
    assert_eq!((seen["outcome"].as_str(), seen["reason"].as_str()), (Some("rejected"), Some("emergency: HALT")));
    assert!(stream.next_named("health").await["redis"]["reachable"].as_bool().unwrap());
    drop(stream);

    // A reconnecting client gets the current state first.
    let mut again = Stream::open(addr).await;
    let (event, snapshot) = again.next().await;
    assert_eq!(event, "snapshot");
    assert_eq!(snapshot["emergency"]["state"], "HALT");
    assert_eq!(snapshot["prices"][0]["symbol"], "arb-1");
    assert_eq!(snapshot["executions"][0]["execution_id"], "x-1");
    stop(infra, dashboard).await;
}

/// The staging preset on `url` with short timeouts, so a dead store answers quickly.
fn staging(url: &str) -> Config {
    let mut config = Config::for_env(Environment::Staging);
    config.logging.level = "warn".to_owned();
    let timeout = Duration::from_millis(300);
    config.state =
        StateConfig::redis(url).unwrap().namespace("dash").operation_timeout(timeout).connect_timeout(timeout);
    config.events =
        EventsConfig::redis(url).unwrap().namespace("dash").operation_timeout(timeout).connect_timeout(timeout);
    config.emergency.bot_id = "dashboard".to_owned();
    config.resilience.retry.max_attempts = 1;
    config.resilience.timeout.per_attempt = Duration::from_secs(1);
    config.resilience.timeout.overall = Duration::from_secs(2);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_down_is_a_503_and_an_error_on_the_page() {
    let mut server = RedisServer::start().expect("redis-server must be installed (apt-get install redis-server)");
    let (infra, dashboard) = start(staging(&server.url()), Some(TOKEN)).await;
    let addr = dashboard.local_addr();
    assert_eq!(get(addr, "/api/snapshot").await.json()["errors"], json!([]));

    server.kill().unwrap();
    let reply = act(addr, "halt", halt_body("global"), &[]).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    let message = reply.json()["error"].as_str().unwrap().to_owned();
    assert!(message.contains("store is unreachable") && message.contains("NOT in force"), "{message}");
    let bot = act(addr, "shutdown", halt_body("bot:arb-1"), &[]).await;
    assert_eq!(bot.status, 503, "{}", bot.body);

    let snapshot = get(addr, "/api/snapshot").await.json();
    let errors = snapshot["errors"].as_array().unwrap();
    assert!(!errors.is_empty(), "{snapshot}");
    assert_eq!(snapshot["health"]["redis"]["reachable"], false);
    let page = get(addr, "/").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<strong>Problem:</strong>"), "the page shows the error");
    assert_eq!(get(addr, "/api/audit").await.status, 503);
    dashboard.close().await;
    drop(infra); // closing would wait for the dead store
}
