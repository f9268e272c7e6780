//! End to end with a real Prometheus (Debian's `prometheus` package, started on a free loopback
//! port by infra-testkit): it scrapes a running `trading_bot --metrics` and `infractl metrics`
//! (the fleet view); after a halt issued through `infractl`, its query API shows the bot's
//! emergency state as HALT from both, the breakers' state series with exactly one state each,
//! and the `InfraBotHalted` alert of `docs/observability/alerts.yml` firing.

mod support;

use std::{
    net::{SocketAddr, TcpListener},
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use infra_testkit::{PrometheusServer, RedisServer, Sample, cargo_example};
use support::{Running, infractl, run_args};

const BOT: &str = "prom-bot";
const LIMIT: Duration = Duration::from_secs(60);

/// A loopback address nobody listens on right now.
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// Kills the bot when the test ends, also on a failure.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn value(samples: &[Sample], label: &str, value: &str) -> Option<f64> {
    samples.iter().find(|s| s.labels.get(label).map(String::as_str) == Some(value)).map(|s| s.value)
}

#[test]
fn prometheus_sees_a_halt_issued_through_infractl() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).expect("the workspace root");
    let server = RedisServer::start().expect("redis-server starts");
    let url = server.url();

    let bot_metrics = free_addr();
    let executable = cargo_example(root, "infra-facade", "trading_bot", &["redis"], true).expect("the example builds");
    let mut bot = Command::new(executable);
    bot.args(["--seconds", "600", "--loss-limit", "1000000000", "--metrics", &bot_metrics.to_string()])
        .current_dir(std::env::temp_dir())
        .env("INFRA_ENV", "staging")
        .env("INFRA_STATE__REDIS_URL", &url)
        .env("INFRA_EVENTS__REDIS_URL", &url)
        .env("INFRA_EMERGENCY__BOT_ID", BOT)
        .env("INFRA_LOGGING__LEVEL", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let _bot = Killed(bot.spawn().expect("the bot starts"));

    let fleet_metrics = free_addr();
    let listen = fleet_metrics.to_string();
    let fleet = Running::spawn(infractl(&["--env", "staging", "--redis-url", &url, "metrics", "--listen", &listen]));
    let alerts = root.join("docs/observability/alerts.yml");
    let prometheus = PrometheusServer::start(&[bot_metrics, fleet_metrics], &[alerts]).expect("prometheus starts");

    let bot_state = format!("infra_emergency_state{{bot=\"{BOT}\",instance=\"{bot_metrics}\"}} == 1");
    let fleet_state = format!("infra_emergency_state{{bot=\"{BOT}\",instance=\"{fleet_metrics}\"}} == 1");
    for (what, query) in [("the bot", &bot_state), ("infractl metrics", &fleet_state)] {
        let normal = prometheus.wait_for(query, LIMIT, |s| value(s, "state", "NORMAL") == Some(1.0));
        assert!(normal.is_ok(), "{what}: {normal:?}");
    }

    let on = |args: &[&str]| {
        let all: Vec<&str> = ["--env", "staging", "--redis-url", url.as_str()].iter().chain(args).copied().collect();
        run_args(&all)
    };
    let halted = on(&["emergency", "halt", "--global", "--reason", "prometheus drill", "--operator", "alice"]);
    assert_eq!(halted.ok().record()["to"], "HALT");

    for (what, query) in [("the bot", &bot_state), ("infractl metrics", &fleet_state)] {
        let halt = prometheus.wait_for(query, LIMIT, |s| s.len() == 1 && value(s, "state", "HALT") == Some(1.0));
        assert!(halt.is_ok(), "{what}: {halt:?}");
    }
    let transitions = prometheus
        .query(&format!("infra_emergency_transitions_total{{instance=\"{bot_metrics}\",scope=\"global\",to=\"HALT\"}}"))
        .unwrap();
    assert_eq!(transitions.len(), 1, "{transitions:?}");
    assert_eq!(
        (value(&transitions, "source", "manual"), value(&transitions, "from", "NORMAL")),
        (Some(1.0), Some(1.0))
    );

    // Every breaker of the bot is in exactly one state; the store's and the bus's are closed.
    let breakers =
        prometheus.query(&format!("sum by (name) (infra_circuitbreaker_state{{instance=\"{bot_metrics}\"}})")).unwrap();
    for name in ["state", "events", "exchange"] {
        assert_eq!(value(&breakers, "name", name), Some(1.0), "{breakers:?}");
    }
    let closed = prometheus
        .query(&format!("infra_circuitbreaker_state{{instance=\"{bot_metrics}\",state=\"closed\"}}"))
        .unwrap();
    assert_eq!((value(&closed, "name", "state"), value(&closed, "name", "events")), (Some(1.0), Some(1.0)));
    let up = prometheus.query(&format!("infra_redis_up{{instance=\"{bot_metrics}\"}}")).unwrap();
    assert_eq!((value(&up, "component", "state"), value(&up, "component", "events")), (Some(1.0), Some(1.0)));

    let firing = prometheus.wait_for("ALERTS{alertname=\"InfraBotHalted\",alertstate=\"firing\"}", LIMIT, |s| {
        value(s, "bot", BOT).is_some()
    });
    assert!(firing.is_ok(), "{firing:?}");

    fleet.interrupt();
    let stopped = fleet.finish();
    assert_eq!(stopped.code(), Some(0), "{stopped:?}");
    assert!(stopped.stdout.contains(&format!("http://{fleet_metrics}/metrics")), "{stopped:?}");
}
