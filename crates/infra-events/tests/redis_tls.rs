//! Both Redis buses over TLS (`rediss://`) against a `redis-server` that speaks only TLS and
//! requires a client certificate, with a throwaway CA from infra-testkit.
#![cfg(feature = "tls")]

use std::time::Duration;

use futures::StreamExt;
use infra_config::RedisUrl;
use infra_events::{
    EventBus, EventStream, SubscribeOptions, Topic,
    redis::{DurableBus, DurableOptions, RedisBus},
};
use infra_testkit::{ClientAuth, TlsRedisServer};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(5);

async fn next_number(stream: &mut EventStream) -> i64 {
    tokio::time::timeout(TIMEOUT, stream.next()).await.expect("an event in time").expect("open").decode().unwrap()
}

async fn server() -> TlsRedisServer {
    tokio::task::spawn_blocking(|| TlsRedisServer::builder().client_auth(ClientAuth::Required).start())
        .await
        .unwrap()
        .expect("a TLS redis-server starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_sub_over_tls() {
    let server = server().await;
    let url = RedisUrl::parse(&server.url_with_client_cert()).unwrap();
    let publisher = RedisBus::new(&url, "tls", "pub", TIMEOUT).unwrap();
    let subscriber = RedisBus::new(&url, "tls", "sub", TIMEOUT).unwrap();
    let mut fills = subscriber.stream(Topic::Channel("fills".to_owned()), SubscribeOptions::default()).await.unwrap();
    for n in 0..20 {
        assert_eq!(publisher.publish("fills", json!(n)).await.unwrap().redis_receivers, Some(1));
    }
    for n in 0..20 {
        assert_eq!(next_number(&mut fills).await, n);
    }
    publisher.close().await.unwrap();
    subscriber.close().await.unwrap();

    // Without the client certificate, publishing fails with the reason.
    let refused = RedisBus::new(&RedisUrl::parse(&server.url()).unwrap(), "tls", "pub", TIMEOUT).unwrap();
    let error = refused.publish("fills", json!(0)).await.unwrap_err();
    let chain = format!("{error}: {}", std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default());
    assert!(chain.contains("the server requires a client certificate"), "{chain}");
    refused.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_events_over_tls() {
    let server = server().await;
    let url = RedisUrl::parse(&server.url_with_client_cert()).unwrap();
    let publisher = DurableBus::new(&url, "tls", "pub", TIMEOUT, DurableOptions::default()).unwrap();
    let consumer = DurableBus::new(&url, "tls", "worker", TIMEOUT, DurableOptions::default()).unwrap();
    let mut orders = consumer
        .stream(Topic::Channel("orders".to_owned()), SubscribeOptions::default().group("workers"))
        .await
        .unwrap();
    for n in 0..20 {
        publisher.publish("orders", json!(n)).await.unwrap();
    }
    for n in 0..20 {
        assert_eq!(next_number(&mut orders).await, n);
    }
    assert_eq!(server.cli(&["XLEN", "tls:stream:orders"]).unwrap(), "20");
    publisher.close().await.unwrap();
    consumer.close().await.unwrap();
}
