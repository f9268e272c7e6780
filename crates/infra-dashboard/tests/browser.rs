//! The dashboard in a real browser: Debian's `chromium`, headless, driven through
//! `chromedriver` (WebDriver, with fantoccini). The test starts a Redis (infra-testkit), a
//! `trading_bot` process on it and the dashboard in-process on the same Redis, then does what an
//! operator does: watches a price update arrive without reloading, halts the fleet through the
//! confirmation dialog, sees the banner and the title turn HALT, sees the bot stop trading (its
//! executions rejected by the emergency state, on the page and on the bus) and the audit log name
//! the operator, then resumes and sees NORMAL and fills again. Screenshots of each state go to
//! `<target>/dashboard-screenshots/`.
//!
//! Every wait polls with a deadline. `.ci/run` installs `chromium` and `chromium-driver`.

use std::{
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator};
use futures::StreamExt;
use infra_dashboard::{Dashboard, DashboardOptions};
use infra_facade::{
    Infrastructure,
    config::{Config, Environment, RedisUrl},
    emergency::ControllerOptions,
    prelude::*,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The longest any one wait may take.
const LIMIT: Duration = Duration::from_secs(30);
const BOT: &str = "browser-bot";
const TOKEN: &str = "browser-test-token";
const OPERATOR: &str = "alice-browser";

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("its address").port()
}

/// chromedriver on a free loopback port, in a process group of its own so that dropping it
/// kills the browsers it started too (also when the test fails).
struct ChromeDriver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl ChromeDriver {
    fn start() -> Self {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let profile =
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("chromium-{}-{port}", std::process::id()));
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMEDRIVER} starts (Debian's chromium-driver, see .ci/run): {e}"));
        let driver = Self { child, port, profile };
        let deadline = Instant::now() + LIMIT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen on {port} within {LIMIT:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        driver
    }

    /// A headless Chromium session.
    async fn session(&self) -> Client {
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--window-size=1400,1000",
                    format!("--user-data-dir={}", self.profile.display()),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else { unreachable!("an object literal") };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("chromedriver opens a chromium session")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Where the screenshots go: `<target>/dashboard-screenshots/`.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("the workspace root").join("target"),
        PathBuf::from,
    );
    let dir = target.join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    dir
}

/// Saves what the browser shows as `<target>/dashboard-screenshots/<name>.png`.
async fn screenshot(client: &Client, name: &str) -> PathBuf {
    let png = client.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).expect("the screenshot is saved");
    path
}

/// Kills the bot when the test ends, also on a failure.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `trading_bot` (built with `redis`) on the Redis at `url`, for ten minutes, with a loss
/// limit it never reaches: only the test halts it.
fn start_bot(root: &Path, url: &str) -> Killed {
    let executable = infra_testkit::cargo_example(root, "infra-facade", "trading_bot", &["redis"], true)
        .expect("the example builds");
    let mut bot = Command::new(executable);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("INFRA_") {
            bot.env_remove(name);
        }
    }
    bot.args(["--seconds", "600", "--loss-limit", "1000000000"])
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .env("INFRA_ENV", "staging")
        .env("INFRA_STATE__REDIS_URL", url)
        .env("INFRA_EVENTS__REDIS_URL", url)
        .env("INFRA_EMERGENCY__BOT_ID", BOT)
        .env("INFRA_LOGGING__LEVEL", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    Killed(bot.spawn().expect("the bot starts"))
}

/// Runs `script` (a function body returning a value) in the page.
async fn js(client: &Client, script: &str) -> Value {
    client.execute(script, Vec::new()).await.unwrap_or_else(|e| panic!("script failed ({e}): {script}"))
}

/// Polls `script` until it returns something other than `null` or `false` and returns that;
/// after [`LIMIT`], saves a `failed-<what>` screenshot and fails.
async fn until(client: &Client, what: &str, script: &str) -> Value {
    let deadline = Instant::now() + LIMIT;
    loop {
        let value = js(client, script).await;
        if !matches!(value, Value::Null | Value::Bool(false)) {
            return value;
        }
        if Instant::now() > deadline {
            let shot = screenshot(client, &format!("failed-{}", what.replace(' ', "-"))).await;
            let banner = js(client, "return document.querySelector('#banner')?.outerHTML ?? null").await;
            panic!("{what}: not seen within {LIMIT:?} (screenshot {}; banner {banner})", shot.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The bot's executions from the bus, in order.
struct Executions(mpsc::UnboundedReceiver<Value>);

impl Executions {
    /// Reads executions until `done` says so (given each one), failing after [`LIMIT`].
    async fn until(&mut self, what: &str, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        let found = tokio::time::timeout(LIMIT, async {
            while let Some(event) = self.0.recv().await {
                let stop = done(&event);
                seen.push(event);
                if stop {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(found, Ok(true), "{what}: not seen within {LIMIT:?} in {} executions: {seen:?}", seen.len());
        seen
    }
}

/// Fills in and confirms the dialog of `action` for the global scope (the token typed unless
/// the page remembered it); returns the text of `#confirm-error` if the dialog stayed open with
/// one (then cancelled), `None` once it closed.
async fn act(client: &Client, action: &str, reason: &str, shot: Option<&str>) -> Option<String> {
    client.find(Locator::Css("#action-scope")).await.unwrap().select_by_value("global").await.unwrap();
    client.find(Locator::Css(&format!("#action-{action}"))).await.unwrap().click().await.unwrap();
    until(client, &format!("the {action} dialog opens"), "return document.querySelector('#confirm').open").await;
    let ok = client.find(Locator::Css("#confirm-ok")).await.unwrap();
    let reason_input = client.find(Locator::Css("#confirm-reason")).await.unwrap();
    if reason_input.prop("value").await.unwrap().unwrap_or_default().is_empty() {
        assert!(!ok.is_enabled().await.unwrap(), "OK is disabled while the reason is empty");
    }
    reason_input.clear().await.unwrap();
    reason_input.send_keys(reason).await.unwrap();
    let operator = client.find(Locator::Css("#confirm-operator")).await.unwrap();
    operator.clear().await.unwrap();
    operator.send_keys(OPERATOR).await.unwrap();
    let token = client.find(Locator::Css("#confirm-token")).await.unwrap();
    if token.prop("value").await.unwrap().as_deref() != Some(TOKEN) {
        token.clear().await.unwrap();
        token.send_keys(TOKEN).await.unwrap();
    }
    assert!(ok.is_enabled().await.unwrap(), "OK is enabled once there is a reason");
    if let Some(name) = shot {
        screenshot(client, name).await;
    }
    ok.click().await.unwrap();
    let script = "const d = document.querySelector('#confirm'), e = document.querySelector('#confirm-error'); \
                  return !d.open ? 'closed' : (e && e.textContent.trim() ? e.textContent.trim() : false)";
    let outcome = until(client, &format!("the {action} dialog closes"), script).await;
    if outcome == "closed" {
        return None;
    }
    client.find(Locator::Css("#confirm-cancel")).await.unwrap().click().await.unwrap();
    until(client, &format!("the {action} dialog cancelled"), "return !document.querySelector('#confirm').open").await;
    Some(outcome.as_str().unwrap_or_default().to_owned())
}

/// Whether the token field holds the token when the dialog of `action` opens (remembered in
/// sessionStorage), then cancels.
async fn token_remembered(client: &Client, action: &str) -> bool {
    client.find(Locator::Css(&format!("#action-{action}"))).await.unwrap().click().await.unwrap();
    until(client, &format!("the {action} dialog opens"), "return document.querySelector('#confirm').open").await;
    let token = client.find(Locator::Css("#confirm-token")).await.unwrap().prop("value").await.unwrap();
    client.find(Locator::Css("#confirm-cancel")).await.unwrap().click().await.unwrap();
    until(client, &format!("the {action} dialog cancelled"), "return !document.querySelector('#confirm').open").await;
    token.as_deref() == Some(TOKEN)
}

/// The script returning the effective state once the banner and the title both show `state`.
fn shows_state(state: &str) -> String {
    format!(
        "const b = document.querySelector('#banner'); \
         return b && b.dataset.state === '{state}' && document.title.startsWith('[{state}]') && b.textContent"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_halts_and_resumes_the_fleet_from_the_page() {
    let started = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("the workspace root").to_owned();
    let server = infra_testkit::RedisServer::start().expect("redis-server must be installed");
    let url = server.url();
    let bot = {
        let (root, url) = (root.clone(), url.clone());
        tokio::task::spawn_blocking(move || start_bot(&root, &url)).await.unwrap()
    };

    // The dashboard in-process, on the same Redis, as `infractl dashboard` runs it: a
    // controller that is not a bot.
    let mut config = Config::for_env(Environment::Staging);
    config.state.redis_url = Some(RedisUrl::parse(&url).unwrap());
    config.events.redis_url = Some(RedisUrl::parse(&url).unwrap());
    config.emergency.bot_id = "dashboard-browser-test".to_owned();
    let options = ControllerOptions::default().version("infractl dashboard-test").bot_gauges(false);
    let infra = Arc::new(
        Infrastructure::builder(config.clone()).controller_options(options).skip_logging().build().await.unwrap(),
    );
    let mut events = infra
        .events()
        .stream(Topic::from(format!("trading_bot.executions.{BOT}").as_str()), SubscribeOptions::default())
        .await
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let collector = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if tx.send(event.decode::<Value>().expect("an execution is JSON")).is_err() {
                return;
            }
        }
    });
    let mut executions = Executions(rx);
    let dashboard_options =
        DashboardOptions::from_config(&config.dashboard).listen("127.0.0.1:0".parse().unwrap()).token(TOKEN);
    let dashboard = Dashboard::start(Arc::clone(&infra), dashboard_options).await.expect("the dashboard starts");
    let page = format!("http://{}/", dashboard.local_addr());

    let driver = ChromeDriver::start();
    let client = driver.session().await;
    client.goto(&page).await.unwrap();
    until(
        &client,
        "the stream is live",
        "const s = document.querySelector('#stream-status'); \
        return s.textContent.trim() === 'live' && s.dataset.connected === 'true'",
    )
    .await;

    // A price row updates in place: no reload.
    client.execute("window.__notReloaded = true", Vec::new()).await.unwrap();
    let first = until(
        &client,
        "a price row",
        "return document.querySelector('#prices tr[data-symbol]')?.dataset.updatedMs ?? null",
    )
    .await;
    let script = format!(
        "const r = document.querySelector('#prices tr[data-symbol]'); \
         return r.dataset.updatedMs !== {first} && r.querySelector('.price').textContent.trim() !== '' && r.dataset.updatedMs"
    );
    until(&client, "a price update", &script).await;
    assert_eq!(js(&client, "return window.__notReloaded === true").await, true, "the page was not reloaded");
    let fleet_row = format!("document.querySelector('#fleet tr[data-bot=\"{BOT}\"]')");
    until(&client, "the bot in the fleet", &format!("return {fleet_row}?.dataset.state === 'NORMAL'")).await;
    let bot_items = format!("#executions li[data-bot=\"{BOT}\"]");
    until(&client, "the bot's executions", &format!("return document.querySelector('{bot_items}') !== null")).await;
    until(&client, "the banner NORMAL", &shows_state("NORMAL")).await;
    let meter = format!("return document.querySelector('#limits meter[data-bot=\"{BOT}\"][data-limit]') !== null");
    until(&client, "the bot's limit meter", &meter).await;
    let normal = screenshot(&client, "normal").await;

    // Halt, global, through the confirmation dialog.
    let reason = "browser drill: halt everything";
    assert_eq!(act(&client, "halt", reason, Some("confirm")).await, None, "the halt is accepted");
    let banner = until(&client, "the banner HALT", &shows_state("HALT")).await;
    let banner = banner.as_str().unwrap_or_default().to_owned();
    assert!(banner.contains(reason) && banner.contains(OPERATOR), "the banner says who and why: {banner}");
    assert!(banner.contains("global"), "the banner names the scope: {banner}");

    // The bot stopped trading: on the bus, a signal refused by the emergency state, then no
    // fill among the next executions that had a signal.
    executions
        .until("an execution rejected by the halt", |e| e["outcome"] == "rejected" && e["reason"] == "emergency: HALT")
        .await;
    let mut refused = 0;
    let after = executions
        .until("three more refused signals", |e| {
            refused += usize::from(e["reason"] == "emergency: HALT");
            refused == 3
        })
        .await;
    assert!(after.iter().all(|e| e["outcome"] != "filled"), "no fill once halted: {after:?}");
    let script = format!(
        "const li = [...document.querySelectorAll('{bot_items}[data-outcome=\"rejected\"]')] \
            .find(li => li.textContent.includes('emergency:')); return li ? li.textContent : null"
    );
    until(&client, "a rejected execution on the page", &script).await;
    until(&client, "the fleet row HALT", &format!("return {fleet_row}?.dataset.state === 'HALT'")).await;
    let newest_audit = "const r = document.querySelector('#audit tr[data-seq]'); return r ? r.textContent : null";
    let script = format!(
        "const r = document.querySelector('#audit tr[data-seq]'); \
         return r && r.textContent.includes('{OPERATOR}') && r.textContent.toLowerCase().includes('halt') && r.textContent"
    );
    let audit = until(&client, "the audit log names the operator", &script).await;
    assert!(audit.as_str().unwrap_or_default().contains(reason), "{audit}");
    let halted = screenshot(&client, "halted").await;
    js(&client, "document.querySelector('#audit').scrollIntoView({block: 'end'}); return true").await;
    screenshot(&client, "halted-audit").await;
    js(&client, "window.scrollTo(0, 0); return true").await;

    // Pressing twice is harmless: still HALT, and a second halt is not a new transition.
    let audit_before = js(&client, newest_audit).await;
    assert!(token_remembered(&client, "halt").await, "the token is remembered for the session");
    let twice = act(&client, "halt", "browser drill: pressed twice", None).await;
    eprintln!("a second halt: {}", twice.as_deref().unwrap_or("accepted, dialog closed"));
    until(&client, "the banner still HALT", &shows_state("HALT")).await;
    assert_eq!(js(&client, newest_audit).await, audit_before, "a second halt adds no transition");

    // Resume: NORMAL again, and the bot fills orders again.
    let resume = act(&client, "resume", "browser drill: all clear", Some("confirm-resume")).await;
    assert_eq!(resume, None, "the resume is accepted");
    until(&client, "the banner NORMAL again", &shows_state("NORMAL")).await;
    until(&client, "the fleet row NORMAL again", &format!("return {fleet_row}?.dataset.state === 'NORMAL'")).await;
    let script = format!(
        "const r = document.querySelector('#audit tr[data-seq]'); \
         return r && r.textContent.includes('{OPERATOR}') && r.textContent.toLowerCase().includes('resume')"
    );
    until(&client, "the resume in the audit log", &script).await;
    executions.until("a fill after the resume", |e| e["outcome"] == "filled").await;
    let resumed = screenshot(&client, "resumed").await;
    assert_eq!(js(&client, "return window.__notReloaded === true").await, true, "the page was not reloaded");

    client.close().await.unwrap();
    collector.abort();
    dashboard.close().await;
    drop(dashboard);
    drop(bot);
    if let Ok(infra) = Arc::try_unwrap(infra) {
        infra.close().await.unwrap();
    }
    eprintln!(
        "screenshots: {}, {}, {} (and confirm.png, halted-audit.png, confirm-resume.png) in {:?}",
        normal.display(),
        halted.display(),
        resumed.display(),
        started.elapsed()
    );
}
