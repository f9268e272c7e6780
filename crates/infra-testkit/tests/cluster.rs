//! A real 3-master Redis Cluster, with one node failed and restarted.

use infra_testkit::{RedisCluster, Reply};

#[test]
fn three_masters_fail_one_node_and_recover() {
    let mut cluster = RedisCluster::start().expect("cluster starts");
    assert_eq!(cluster.nodes().len(), 3);
    let ports: Vec<u16> = cluster.nodes().iter().map(|n| n.port()).collect();
    assert_eq!(
        cluster.url(),
        format!("redis-cluster://127.0.0.1:{}?node=127.0.0.1:{}&node=127.0.0.1:{}", ports[0], ports[1], ports[2])
    );

    // Find keys that live on different nodes, and write each where it belongs.
    let mut owners = Vec::new();
    for i in 0..64 {
        let key = format!("key-{i}");
        let owner = cluster.node_for_key(&key).unwrap();
        if !owners.iter().any(|(_, o)| *o == owner) {
            cluster.nodes()[owner].command(&["SET", &key, "v"]).unwrap();
            owners.push((key, owner));
        }
    }
    assert_eq!(owners.len(), 3, "slots are spread over every master");

    let (lost_key, failed) = owners[0].clone();
    let (kept_key, survivor) = owners[1].clone();
    cluster.fail_node(failed).unwrap();
    assert!(!cluster.node_mut(failed).is_running());
    // Full coverage is not required: the other masters keep serving their slots.
    assert_eq!(cluster.nodes()[survivor].command(&["GET", &kept_key]).unwrap(), Reply::Bulk(Some(b"v".to_vec())));

    cluster.restart_node(failed).unwrap();
    assert_eq!(cluster.node_for_key(&lost_key).unwrap(), failed, "the node rejoins with its slots");
    assert_eq!(cluster.nodes()[failed].command(&["GET", &lost_key]).unwrap(), Reply::Bulk(None), "but not its data");
}

#[test]
fn a_node_redirects_keys_it_does_not_own() {
    let mut cluster = RedisCluster::start().unwrap();
    let owner = cluster.node_for_key("elsewhere").unwrap();
    let other = (owner + 1) % 3;
    let err = cluster.nodes()[other].command(&["GET", "elsewhere"]).unwrap_err();
    assert!(err.to_string().contains("MOVED"), "{err}");
}
