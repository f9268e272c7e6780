//! - `emergency/can_trade_vs_atomic_load`: the gate every order path reads, against the one
//!   atomic load it is made of (goal: ours ≤ 5 ns);
//! - `emergency/halt_propagation_{p50,p99}_vs_pubsub_{p50,p99}`: a halt issued in one
//!   controller until `can_trade()` is false in another with its own Redis connections (store
//!   and bus), against a raw fred pub/sub round trip on the same server, samples alternating
//!   (goal: p99 ratio ≤ 3 and ours < 10 ms). Ours includes the commit (one `SET NX` of the
//!   audit record), the publish and the receiver applying it. Each sample is followed, unmeasured,
//!   by a resume and the housekeeping both transitions leave (pointer, heartbeats), so every halt
//!   meets a quiet system, as halts in production do. Computed here, merged by
//!   `cargo xtask bench`.

#![allow(missing_docs, reason = "criterion generates the bench entry points")]

use std::{
    hint::black_box,
    sync::atomic::{AtomicU8, Ordering},
};

use criterion::{Criterion, criterion_group, criterion_main};
use infra_config::{Config, EmergencyConfig, Environment};
use infra_emergency::{ControllerOptions, EmergencyController};

fn config(bot: &str) -> EmergencyConfig {
    let mut config = Config::for_env(Environment::Development).emergency;
    config.bot_id = bot.to_owned();
    config
}

fn can_trade(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let controller = runtime
        .block_on(EmergencyController::in_memory(&config("bench"), ControllerOptions::default()))
        .expect("an in-memory controller starts");
    let atomic = AtomicU8::new(0);
    let mut group = c.benchmark_group("emergency/can_trade_vs_atomic_load");
    group.bench_function("ours", |b| b.iter(|| black_box(black_box(&controller).can_trade())));
    group.bench_function("baseline", |b| b.iter(|| black_box(black_box(&atomic).load(Ordering::Acquire) <= 1)));
    group.finish();
    runtime.block_on(controller.close()).unwrap();
}

mod propagation {
    use std::{
        sync::Arc,
        time::{Duration, Instant},
    };

    use infra_config::RedisUrl;
    use infra_emergency::{ControllerOptions, EmergencyController, EmergencyState, Scope};
    use infra_events::redis::RedisBus;
    use infra_redis::fred::prelude::{Builder, ClientLike, Config as FredConfig, EventInterface, PubsubInterface};
    use infra_state::redis::RedisStore;
    use infra_testkit::{RedisServer, bench};

    const SAMPLES: usize = 2_000;
    const WARM_UP: usize = 50;

    /// A controller with its own store and bus connections, as another process has.
    async fn controller(server: &RedisServer, bot: &str) -> EmergencyController {
        let url = RedisUrl::parse(&server.url()).unwrap();
        let timeout = Duration::from_secs(5);
        let store = Arc::new(RedisStore::with_url(&url, "bench", timeout, timeout).unwrap());
        let bus = Arc::new(RedisBus::new(&url, "bench", bot, timeout).unwrap());
        EmergencyController::start(&super::config(bot), store, bus, ControllerOptions::default()).await.unwrap()
    }

    pub(super) fn run() {
        const P50: &str = "emergency/halt_propagation_p50_vs_pubsub_p50";
        const P99: &str = "emergency/halt_propagation_p99_vs_pubsub_p99";
        if !bench::selected(P50) && !bench::selected(P99) {
            return;
        }
        let samples = if bench::quick() { SAMPLES / 4 } else { SAMPLES };
        let server = RedisServer::start().expect("redis-server is needed for the redis benchmarks");
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (mut ours, mut baseline) = runtime.block_on(async {
            let issuer = controller(&server, "issuer").await;
            let receiver = controller(&server, "receiver").await;
            let mut watch = receiver.watch();

            let config = FredConfig::from_url(&server.url()).unwrap();
            let raw_publisher = Builder::from_config(config.clone()).build().unwrap();
            let raw_subscriber = Builder::from_config(config).build_subscriber_client().unwrap();
            raw_publisher.init().await.unwrap();
            raw_subscriber.init().await.unwrap();
            let mut messages = raw_subscriber.message_rx();
            raw_subscriber.subscribe("raw:halt").await.unwrap();
            // What a halt carries, roughly: the raw side publishes a record of the same size.
            let text = serde_json::json!({
                "seq": 1, "scope": "global", "from": "NORMAL", "to": "HALT", "action": "halt", "source": "manual",
                "actor": "bench", "reason": "propagation sample", "metrics": {}, "at_ms": 0, "by_bot": "issuer", "host": "h"
            })
            .to_string();

            let mut ours = Vec::with_capacity(samples);
            let mut baseline = Vec::with_capacity(samples);
            for i in 0..samples + WARM_UP {
                let started = Instant::now();
                issuer.halt(Scope::Global, "bench", "propagation sample").await.unwrap();
                watch.wait_for(|s| !s.state.can_trade()).await.unwrap();
                let ours_sample = started.elapsed();
                assert!(!receiver.can_trade());

                let started = Instant::now();
                let _: i64 = raw_publisher.publish("raw:halt", text.as_str()).await.unwrap();
                messages.recv().await.unwrap();
                let baseline_sample = started.elapsed();

                // Not measured: back to NORMAL everywhere, and the housekeeping both transitions
                // left (pointer, heartbeats) done, so the next halt meets a quiet system, as a
                // real one does (only the once-a-second resync may overlap it, as in production).
                issuer.resume(Scope::Global, "bench", "next sample").await.unwrap();
                watch.wait_for(|s| s.state == EmergencyState::Normal).await.unwrap();
                issuer.refresh().await.unwrap();
                receiver.refresh().await.unwrap();
                if i >= WARM_UP {
                    ours.push(ours_sample);
                    baseline.push(baseline_sample);
                }
            }
            issuer.close().await.unwrap();
            receiver.close().await.unwrap();
            (ours, baseline)
        });
        ours.sort();
        baseline.sort();
        bench::write_comparison(P50, bench::percentile(&ours, 0.50), bench::percentile(&baseline, 0.50));
        bench::write_comparison(P99, bench::percentile(&ours, 0.99), bench::percentile(&baseline, 0.99));
    }
}

fn halt_propagation(_: &mut Criterion) {
    propagation::run();
}

criterion_group!(benches, can_trade, halt_propagation);
criterion_main!(benches);
