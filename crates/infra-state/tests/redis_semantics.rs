//! One answer on every path, atomic batches, and a store that closes: against a real server.

mod support;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use infra_config::RedisUrl;
use infra_state::{StateError, StateStore, StateValue, redis::RedisStore};
use infra_testkit::{RedisServer, Reply};
use support::start_redis;

const TIMEOUT: Duration = Duration::from_secs(5);

fn store(server: &RedisServer, namespace: &str) -> RedisStore {
    let url = RedisUrl::parse(&server.url()).unwrap();
    RedisStore::with_url(&url, namespace, TIMEOUT, TIMEOUT).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_another_type_reads_as_absent_on_every_path() {
    let server = start_redis();
    server.command(&["HSET", "sem:h", "field", "1"]).unwrap();
    server.command(&["SET", "sem:s", "7"]).unwrap();
    let concrete = store(&server, "sem");
    let dynamic: Arc<dyn StateStore> = Arc::new(concrete.clone());

    assert_eq!(concrete.get("h").await.unwrap(), None, "a lone GET");
    assert_eq!(dynamic.get("h").await.unwrap(), None, "a lone dyn get");
    assert_eq!(concrete.get_many(&["h", "s"]).await.unwrap(), vec![None, Some(StateValue::json(&7).unwrap())]);
    assert_eq!(dynamic.get_versioned("h").await.unwrap(), None);
    // Many calls in flight through dyn are coalesced into MGET: the same answer.
    let calls = (0..64).map(|n| {
        let dynamic = Arc::clone(&dynamic);
        tokio::spawn(async move { dynamic.get(if n % 2 == 0 { "h" } else { "s" }).await.unwrap() })
    });
    for (n, answer) in futures::future::join_all(calls).await.into_iter().enumerate() {
        let expected = (n % 2 == 1).then(|| StateValue::json(&7).unwrap());
        assert_eq!(answer.unwrap(), expected, "call {n}");
    }
    assert!(dynamic.exists("h").await.unwrap(), "exists sees the key");
    let error = dynamic.increment("h", 1.into()).await.unwrap_err();
    assert!(matches!(error, StateError::Backend { .. }), "{error}");
    assert!(format!("{:?}", std::error::Error::source(&error)).contains("WRONGTYPE"), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_many_is_never_seen_half_applied() {
    let server = start_redis();
    let store = store(&server, "atomic");
    // Large enough that a plain pipeline spans several of the server's reads, so another
    // client's command could run between its SETs.
    let keys: Vec<String> = (0..200).map(|n| format!("k{n}")).collect();
    let full_keys: Vec<String> = keys.iter().map(|k| format!("atomic:{k}")).collect();
    let batch = |generation: usize| -> Vec<(&str, StateValue)> {
        let value = StateValue::json(&format!("{generation}:{}", "x".repeat(2048))).unwrap();
        keys.iter().map(|k| (k.as_str(), value.clone())).collect()
    };
    store.set_many(&batch(0), None).await.unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (done, mut probe) = (Arc::clone(&done), server.connect().unwrap());
        let mut args = vec!["MGET"];
        args.extend(full_keys.iter().map(String::as_str));
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        std::thread::spawn(move || {
            let mut reads = 0;
            while !done.load(Ordering::Relaxed) {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let Reply::Array(Some(values)) = probe.command(&args).unwrap() else { panic!("MGET failed") };
                let first = values[0].as_text().unwrap();
                let generation = first.split(':').next().unwrap().to_owned();
                for value in &values {
                    let text = value.as_text().unwrap();
                    assert!(text.starts_with(&generation), "a reader saw two batches at once");
                }
                reads += 1;
            }
            reads
        })
    };
    for generation in 1..=150 {
        store.set_many(&batch(generation), None).await.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let reads =
        tokio::task::spawn_blocking(move || reader.join()).await.unwrap().expect("the reader saw no torn batch");
    assert!(reads > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_finishes_then_refuses_and_releases_the_connection() {
    let server = start_redis();
    let store: Arc<dyn StateStore> = Arc::new(store(&server, "close"));
    store.set("k", StateValue::json(&1).unwrap(), None).await.unwrap();
    assert_eq!(server.clients().unwrap(), 1);

    store.close().await.unwrap();
    assert!(
        server.wait_for_clients(0, Duration::from_secs(5)).unwrap(),
        "clients still connected: {}",
        server.clients().unwrap()
    );
    let error = store.get("k").await.unwrap_err();
    assert!(matches!(error, StateError::Connection { .. }), "{error:?}");
    let source = std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default();
    assert!(source.ends_with("was closed"), "{source}");
    // A closed store never answers again, and refused before sending anything: a retry policy
    // must not try it again.
    assert!(!error.is_transient() && !error.may_have_been_applied(), "{error}");
    store.close().await.unwrap();
}

#[test]
fn a_store_dropped_outside_its_runtime_disconnects() {
    let server = start_redis();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let store = runtime.block_on(async {
        let store = store(&server, "dropped");
        store.set("k", StateValue::json(&1).unwrap(), None).await.unwrap();
        store
    });
    assert_eq!(server.clients().unwrap(), 1);
    drop(store);
    assert!(
        server.wait_for_clients(0, Duration::from_secs(5)).unwrap(),
        "clients still connected: {}",
        server.clients().unwrap()
    );
}

#[tokio::test]
async fn connect_fails_fast_on_a_closed_port_with_the_url_redacted() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = RedisUrl::parse(&format!("redis://bot:hunter2@127.0.0.1:{port}")).unwrap();
    let store = RedisStore::with_url(&url, "ns", TIMEOUT, Duration::from_millis(500)).unwrap();
    let started = Instant::now();
    let error = store.connect().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    let text = format!("{error} {error:?}");
    assert!(text.contains(&format!("redis://bot:***@127.0.0.1:{port}")) && !text.contains("hunter2"), "{text}");
}
