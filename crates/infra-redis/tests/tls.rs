//! TLS (`rediss://`) against a real `redis-server` that speaks only TLS, with a throwaway CA:
//! with and without a client certificate, a certificate whose names differ from the address,
//! and the errors of each refusal.
#![cfg(feature = "tls")]

use std::time::Duration;

use fred::prelude::KeysInterface;
use infra_config::RedisUrl;
use infra_redis::{ClientOptions, Connection, RedisError, fred};
use infra_testkit::{ClientAuth, TlsRedisServer};

const TIMEOUT: Duration = Duration::from_secs(2);

fn connection(url: &str) -> Connection {
    let url = RedisUrl::parse(url).unwrap();
    let options = ClientOptions::new(TIMEOUT, TIMEOUT);
    Connection::new(infra_redis::client(&url, &options).unwrap(), &url, TIMEOUT)
}

async fn start(builder: infra_testkit::TlsRedisServerBuilder) -> TlsRedisServer {
    tokio::task::spawn_blocking(move || builder.start()).await.unwrap().expect("a TLS redis-server starts")
}

#[tokio::test]
async fn the_test_ca_is_trusted_and_commands_go_through() {
    let server = start(TlsRedisServer::builder()).await;
    let connection = connection(&server.url());
    connection.connect().await.unwrap();
    let () = connection.client().set("k", "over tls", None, None, false).await.unwrap();
    assert_eq!(server.cli(&["GET", "k"]).unwrap(), "over tls");
    connection.close().await;
}

#[tokio::test]
async fn a_server_requiring_a_client_certificate_refuses_a_client_without_one() {
    let server = start(TlsRedisServer::builder().client_auth(ClientAuth::Required)).await;
    let without = connection(&server.url());
    let error = without.connect().await.unwrap_err();
    let text = format!("{error}: {}", std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default());
    eprintln!("{text}");
    assert!(matches!(error, RedisError::Connect { .. }), "{error:?}");
    assert!(text.contains("tls: the server requires a client certificate"), "{text}");
    without.close().await;

    let with = connection(&server.url_with_client_cert());
    with.connect().await.unwrap();
    let () = with.client().set("k", "v", None, None, false).await.unwrap();
    assert_eq!(with.client().get::<Option<String>, _>("k").await.unwrap().as_deref(), Some("v"));
    with.close().await;
}

#[tokio::test]
async fn a_certificate_naming_another_host_needs_tls_server_name() {
    let server = start(TlsRedisServer::builder().certificate_names(&["redis.test"], &[])).await;
    let by_address = connection(&server.url());
    let error = by_address.connect().await.unwrap_err();
    let text = format!("{error}: {}", std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default());
    eprintln!("{text}");
    assert!(text.contains("set tls_server_name"), "{text}");
    by_address.close().await;

    let by_name = connection(&format!("{}&tls_server_name=redis.test", server.url()));
    by_name.connect().await.unwrap();
    let () = by_name.client().set("k", "v", None, None, false).await.unwrap();
    by_name.close().await;
}

#[tokio::test]
async fn the_system_roots_do_not_trust_the_test_ca() {
    let server = start(TlsRedisServer::builder()).await;
    let connection = connection(&format!("rediss://127.0.0.1:{}", server.port()));
    let error = connection.connect().await.unwrap_err();
    let text = format!("{error}: {}", std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default());
    eprintln!("{text}");
    assert!(text.contains("give its CA with tls_ca"), "{text}");
    connection.close().await;
}

#[tokio::test]
async fn plain_text_to_a_tls_port_fails_within_the_timeout() {
    let server = start(TlsRedisServer::builder()).await;
    let connection = connection(&format!("redis://127.0.0.1:{}", server.port()));
    let started = std::time::Instant::now();
    assert!(connection.connect().await.is_err());
    assert!(started.elapsed() < TIMEOUT * 3);
    connection.close().await;
}

#[test]
fn unreadable_files_are_named_in_the_error() {
    let options = ClientOptions::new(TIMEOUT, TIMEOUT);
    let url = RedisUrl::parse("rediss://bot:hunter2@127.0.0.1:1?tls_ca=/nonexistent/ca.pem").unwrap();
    let error = infra_redis::client(&url, &options).unwrap_err().to_string();
    assert!(error.contains("cannot read tls_ca `/nonexistent/ca.pem`"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
    let url = RedisUrl::parse("rediss://127.0.0.1:1?tls_cert=/nonexistent/c.pem&tls_key=/nonexistent/k.pem").unwrap();
    let error = infra_redis::client(&url, &options).unwrap_err().to_string();
    assert!(error.contains("cannot read the client certificate `/nonexistent/c.pem`"), "{error}");
}

#[tokio::test]
async fn tls_to_a_plain_text_port_fails_within_the_timeout() {
    // Redis reads the ClientHello as an unfinished inline command and never answers: the
    // connect timeout is what ends the attempt.
    let server = tokio::task::spawn_blocking(infra_testkit::RedisServer::start).await.unwrap().unwrap();
    let ca = tokio::task::spawn_blocking(infra_testkit::TestCa::new).await.unwrap().unwrap();
    let connection = connection(&format!("rediss://127.0.0.1:{}?tls_ca={}", server.port(), ca.ca_file().display()));
    let started = std::time::Instant::now();
    let error = connection.connect().await.unwrap_err();
    assert!(matches!(error, RedisError::ConnectTimeout { .. } | RedisError::Connect { .. }), "{error:?}");
    assert!(started.elapsed() < TIMEOUT * 3);
    connection.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_whose_addresses_differ_from_its_certificate_names_needs_tls_server_name() {
    use infra_testkit::TlsRedisCluster;
    let cluster = tokio::task::spawn_blocking(|| TlsRedisCluster::start("redis.test"))
        .await
        .unwrap()
        .expect("a TLS cluster starts");

    let by_address = connection(&cluster.url());
    let error = by_address.connect().await.unwrap_err();
    let text = format!("{error}: {}", std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default());
    assert!(text.contains("set tls_server_name"), "{text}");
    by_address.close().await;

    // The name is checked for the URL's nodes and for every node CLUSTER SLOTS announces by
    // address: keys on every master are written.
    let by_name = connection(&format!("{}&tls_server_name=redis.test", cluster.url()));
    by_name.connect().await.unwrap();
    for i in 0..30 {
        let () = by_name.client().set(format!("key-{i}"), i, None, None, false).await.unwrap();
    }
    for i in 0..30 {
        let value: i64 = by_name.client().get(format!("key-{i}")).await.unwrap();
        assert_eq!(value, i);
    }
    for node in cluster.nodes() {
        let keys: u64 = node.cli(&["DBSIZE"]).unwrap().parse().unwrap();
        assert!(keys > 0, "the node on port {} holds some of the keys", node.port());
    }
    by_name.close().await;
}
