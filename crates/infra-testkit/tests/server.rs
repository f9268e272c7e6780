//! The test kit against real `redis-server` processes.

use std::{net::TcpStream, time::Duration};

use infra_testkit::{Connection, RedisServer, Reply, TestkitError};

fn port_is_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

fn bulk(text: &str) -> Reply {
    Reply::Bulk(Some(text.as_bytes().to_vec()))
}

#[test]
fn starts_on_a_free_port_without_persistence() {
    let server = RedisServer::start().expect("redis-server starts");
    assert_ne!(server.port(), 6379);
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
    assert_eq!(server.command(&["SET", "k", "v"]).unwrap(), Reply::Status("OK".into()));
    assert_eq!(server.command(&["GET", "k"]).unwrap(), bulk("v"));
    let save = server.command(&["CONFIG", "GET", "save"]).unwrap();
    assert_eq!(save, Reply::Array(Some(vec![bulk("save"), bulk("")])));
    let aof = server.command(&["CONFIG", "GET", "appendonly"]).unwrap();
    assert_eq!(aof, Reply::Array(Some(vec![bulk("appendonly"), bulk("no")])));
}

#[test]
fn two_servers_get_different_ports() {
    let a = RedisServer::start().unwrap();
    let b = RedisServer::start().unwrap();
    assert_ne!(a.port(), b.port());
}

#[test]
fn kill_and_restart_on_the_same_port_with_empty_data() {
    let mut server = RedisServer::start().unwrap();
    let port = server.port();
    server.command(&["SET", "k", "v"]).unwrap();
    server.kill().unwrap();
    assert!(!server.is_running());
    assert!(!port_is_open(port));
    assert!(matches!(server.command(&["PING"]), Err(TestkitError::Io { .. })));

    server.restart().unwrap();
    assert_eq!(server.port(), port);
    assert_eq!(server.command(&["GET", "k"]).unwrap(), Reply::Bulk(None));
}

#[test]
fn stop_is_graceful_and_restart_works_after_it() {
    let mut server = RedisServer::start().unwrap();
    server.stop().unwrap();
    assert!(!server.is_running());
    server.restart().unwrap();
    assert_eq!(server.command(&["PING"]).unwrap(), Reply::Status("PONG".into()));
    // Restarting a running server stops it first.
    server.restart().unwrap();
    assert!(server.is_running());
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let mut server = RedisServer::start().unwrap();
    server.pause().unwrap();
    let mut frozen = Connection::open(server.port(), None, Duration::from_millis(200)).unwrap();
    let err = frozen.command(&["PING"]).unwrap_err();
    assert!(matches!(err, TestkitError::Io { .. }), "{err}");
    assert!(server.is_running(), "a paused server is alive");
    server.resume().unwrap();
    assert_eq!(server.command(&["PING"]).unwrap(), Reply::Status("PONG".into()));
}

#[test]
fn pause_clients_holds_commands_until_the_pause_ends() {
    let server = RedisServer::start().unwrap();
    server.pause_clients(Duration::from_secs(2)).unwrap();
    let mut impatient = Connection::open(server.port(), None, Duration::from_millis(100)).unwrap();
    assert!(impatient.command(&["GET", "k"]).is_err(), "held by CLIENT PAUSE");
    let mut patient = Connection::open(server.port(), None, Duration::from_secs(10)).unwrap();
    assert_eq!(patient.command(&["GET", "k"]).unwrap(), Reply::Bulk(None), "answered once the pause ends");
}

#[test]
fn password_server_rejects_anonymous_clients() {
    let server = RedisServer::builder().password("hunter2").start().unwrap();
    assert_eq!(server.url(), format!("redis://default:hunter2@127.0.0.1:{}", server.port()));
    assert_eq!(server.command(&["PING"]).unwrap(), Reply::Status("PONG".into()));
    let mut anonymous = Connection::open(server.port(), None, Duration::from_secs(2)).unwrap();
    match anonymous.command(&["GET", "k"]).unwrap() {
        Reply::Error(message) => assert!(message.starts_with("NOAUTH"), "{message}"),
        other => panic!("expected NOAUTH, got {other:?}"),
    }
    let err = Connection::open(server.port(), Some(("default", "wrong")), Duration::from_secs(2)).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("redis replied with an error to `AUTH ***`: WRONGPASS"), "{text}");
    assert!(!text.contains("wrong "), "the password is not echoed: {text}");
}

#[test]
fn acl_user_server_switches_the_default_user_off() {
    let server = RedisServer::builder().acl_user("trader", "s3cret").start().unwrap();
    assert_eq!(server.url(), format!("redis://trader:s3cret@127.0.0.1:{}", server.port()));
    assert_eq!(server.command(&["ACL", "WHOAMI"]).unwrap(), bulk("trader"));
    let err = Connection::open(server.port(), Some(("default", "")), Duration::from_secs(2)).unwrap_err();
    assert!(matches!(err, TestkitError::Reply { .. }), "{err}");
    assert_eq!(server.url_without_credentials(), format!("redis://127.0.0.1:{}", server.port()));
}

#[test]
fn dropping_the_handle_kills_the_server() {
    let server = RedisServer::start().unwrap();
    let port = server.port();
    let dir = server.dir().to_owned();
    assert!(dir.join("redis.log").is_file());
    drop(server);
    assert!(!port_is_open(port));
    assert!(!dir.exists(), "the scratch directory is removed");
}

#[test]
fn a_panicking_test_still_kills_its_server() {
    let (sender, receiver) = std::sync::mpsc::channel();
    let outcome = std::thread::spawn(move || {
        let server = RedisServer::start().unwrap();
        sender.send(server.port()).unwrap();
        panic!("the test failed while holding a server");
    })
    .join();
    assert!(outcome.is_err());
    let port = receiver.recv().unwrap();
    assert!(!port_is_open(port));
}

#[test]
fn a_missing_executable_says_how_to_install_redis() {
    let err = RedisServer::builder().executable("/nonexistent/redis-server").start().unwrap_err();
    assert_eq!(
        err.to_string(),
        "`redis-server` was not found on PATH: install Redis (`apt-get install redis-server` on Debian/Ubuntu, \
         `brew install redis` on macOS) or set TESTKIT_REDIS_SERVER to the executable's path"
    );
}

#[test]
fn extra_arguments_reach_the_server() {
    let server = RedisServer::builder().args(["--maxmemory", "10mb"]).start().unwrap();
    let reply = server.command(&["CONFIG", "GET", "maxmemory"]).unwrap();
    assert_eq!(reply, Reply::Array(Some(vec![bulk("maxmemory"), bulk("10485760")])));
}
