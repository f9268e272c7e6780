//! The Redis store over TLS (`rediss://`) against a `redis-server` that speaks only TLS and
//! requires a client certificate, with a throwaway CA from infra-testkit.
#![cfg(feature = "tls")]

use std::time::Duration;

use infra_config::RedisUrl;
use infra_state::{StateError, StateStoreExt, redis::RedisStore};
use infra_testkit::{ClientAuth, TlsRedisServer};

const TIMEOUT: Duration = Duration::from_secs(2);

fn tls_store(url: &str) -> RedisStore {
    RedisStore::with_url(&RedisUrl::parse(url).unwrap(), "tls", TIMEOUT, TIMEOUT).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_works_over_tls_with_a_client_certificate() {
    let server = tokio::task::spawn_blocking(|| TlsRedisServer::builder().client_auth(ClientAuth::Required).start())
        .await
        .unwrap()
        .expect("a TLS redis-server starts");

    let store = tls_store(&server.url_with_client_cert());
    store.set_json("price", &100, None).await.unwrap();
    assert_eq!(store.get_json::<i64>("price").await.unwrap(), Some(100));
    assert_eq!(store.incr("fills", 2).await.unwrap(), 2);
    assert_eq!(server.cli(&["GET", "tls:price"]).unwrap(), "100", "written through TLS, read by redis-cli");
    store.close().await.unwrap();

    // Without the certificate the server refuses the client, and the error says why.
    let refused = tls_store(&server.url());
    let error = refused.get("price").await.unwrap_err();
    assert!(matches!(error, StateError::Connection { .. }), "{error:?}");
    let chain = format!("{error}: {}", std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default());
    assert!(chain.contains("the server requires a client certificate"), "{chain}");
    refused.close().await.unwrap();
}
