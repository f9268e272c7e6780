//! Two controllers in two OS processes on one Redis: a halt issued in one is applied by the
//! other and shows in its heartbeat. The test binary runs itself again as the second process
//! (the environment variable below makes that run the child).

mod support;

use std::{
    io::{BufRead, BufReader, Read, Write},
    process::{Command, Stdio},
    sync::Arc,
    time::Duration,
};

use infra_config::RedisUrl;
use infra_emergency::{ControllerOptions, EmergencyController, EmergencyState, Scope};
use infra_events::redis::RedisBus;
use infra_state::redis::RedisStore;
use support::{config, eventually, wait_status};

/// Set in the child process: the Redis URL to use.
const CHILD_URL: &str = "INFRA_EMERGENCY_CHILD_URL";
/// Prefix of the lines the child prints for the parent.
const TAG: &str = "EMERGENCY-CHILD";
const WAIT: Duration = Duration::from_secs(20);

async fn controller(url: &str, bot: &str) -> EmergencyController {
    let url = RedisUrl::parse(url).unwrap();
    let timeout = Duration::from_secs(1);
    let store = Arc::new(RedisStore::with_url(&url, "fleet", timeout, timeout).unwrap());
    let bus = Arc::new(RedisBus::new(&url, "fleet", bot, timeout).unwrap());
    let options =
        ControllerOptions::default().resync_interval(Duration::from_millis(200)).heartbeat_ttl(Duration::from_secs(5));
    EmergencyController::start(&config(bot, true), store, bus, options).await.unwrap()
}

/// The child: a bot that reports when it stops trading, and runs until its stdin closes.
#[allow(clippy::print_stdout, reason = "the child talks to the parent through stdout")]
async fn child(url: &str) {
    let emergency = controller(url, "child").await;
    println!("{TAG} ready {}", std::process::id());
    let status = wait_status(&emergency, WAIT, |s| s.state == EmergencyState::Halt).await;
    assert!(!emergency.can_trade());
    println!("{TAG} halted {} by {}", status.reason, status.scope);
    tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await.unwrap().unwrap();
    emergency.close().await.unwrap();
    println!("{TAG} closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_in_one_process_is_applied_by_the_other_and_shows_in_its_heartbeat() {
    if let Ok(url) = std::env::var(CHILD_URL) {
        return child(&url).await;
    }
    let server = infra_testkit::RedisServer::start().expect("redis-server is needed for this test");
    let mut process = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_halt_in_one_process_is_applied_by_the_other_and_shows_in_its_heartbeat", "--nocapture"])
        .env(CHILD_URL, server.url())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let stdout = process.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(line) = line.strip_prefix(TAG) {
                let _ = lines_tx.send(line.trim().to_owned());
            }
        }
    });
    let next_line = async |lines: &mut tokio::sync::mpsc::UnboundedReceiver<String>| {
        tokio::time::timeout(WAIT, lines.recv())
            .await
            .expect("the child answers in time")
            .expect("the child is running")
    };
    let ready = next_line(&mut lines).await;
    let child_pid: u32 = ready.strip_prefix("ready ").and_then(|pid| pid.parse().ok()).expect("ready <pid>");
    assert_eq!(child_pid, process.id());

    let parent = controller(&server.url(), "parent").await;
    let before = parent.fleet().await.unwrap();
    let child_before = before.iter().find(|m| m.heartbeat.bot == "child").expect("the child's heartbeat");
    assert_eq!((child_before.heartbeat.state, child_before.heartbeat.pid), (EmergencyState::Normal, child_pid));

    parent.halt(Scope::Global, "alice", "fleet-wide stop").await.unwrap();
    assert_eq!(next_line(&mut lines).await, "halted fleet-wide stop by global");
    let member = eventually(WAIT, "the child's heartbeat shows the halt", || async {
        parent.fleet().await.unwrap().into_iter().find(|m| m.heartbeat.bot == "child" && m.applied_latest_global)
    })
    .await;
    assert_eq!(
        (member.heartbeat.state, member.heartbeat.global_seq, member.heartbeat.pid),
        (EmergencyState::Halt, 1, child_pid)
    );
    assert!(!member.heartbeat.host.is_empty());

    // Closing its stdin ends the child, which removes its heartbeat.
    process.stdin.take().unwrap().write_all(b"").unwrap();
    assert_eq!(next_line(&mut lines).await, "closed");
    let status = tokio::task::spawn_blocking(move || process.wait()).await.unwrap().unwrap();
    assert!(status.success(), "the child failed: {status}");
    let fleet = parent.fleet().await.unwrap();
    assert_eq!(fleet.iter().map(|m| m.heartbeat.bot.as_str()).collect::<Vec<_>>(), ["parent"]);
    parent.close().await.unwrap();
}
