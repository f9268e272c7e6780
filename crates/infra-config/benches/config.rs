//! `config/load_vs_figment_extract`: our layered load (labelled layers, unknown-key walk,
//! validation) against a bare figment extraction of the same layers into the same type.

#![allow(missing_docs, reason = "criterion generates the bench entry points")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use figment::{
    Figment,
    providers::{Format, Serialized, Toml},
};
use infra_config::{Config, Environment};

const FILE: &str = r#"
[default.state]
namespace = "bench"

[production]
state.redis_url = "redis://:secret@cache:6379"
events.redis_url = "redis://:secret@bus:6379"
emergency.bot_id = "arb-1"
emergency.daily_loss_limit = -250.0

[production.resilience.retry]
max_attempts = 5
jitter = "decorrelated"
"#;

fn load(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("infra-config-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("infra.toml");
    std::fs::write(&path, FILE).expect("write infra.toml");

    let mut group = c.benchmark_group("config/load_vs_figment_extract");
    group.bench_function("ours", |b| {
        b.iter(|| {
            let config = Config::loader()
                .environment(Environment::Production)
                .file(&path)
                .without_env_vars()
                .set("emergency.alert_fraction", 0.75)
                .load()
                .expect("valid");
            black_box(config)
        })
    });
    group.bench_function("baseline", |b| {
        b.iter(|| {
            let preset = Config::for_env(Environment::Production);
            let config: Config = Figment::from(Serialized::defaults(&preset))
                .merge(Toml::file_exact(&path).nested())
                .merge(("emergency.alert_fraction", 0.75))
                .select("production")
                .extract()
                .expect("valid");
            black_box(config)
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, load);
criterion_main!(benches);
