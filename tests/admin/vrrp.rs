//! `/v1/vrrp` and `tandemctl vrrp` on two real VRRP nodes in network namespaces (root):
//! the master and the backup each report their state, priorities and the master's address.

use serde_json::Value;
use std::time::Duration;
use tandem_tests::admin::ctl;
use tandem_tests::netns::Lab;
use tandem_tests::vrrp_lab::*;

async fn vrrp_json(lab: &Lab, i: usize) -> Value {
    let socket = admin_socket(lab, i);
    let (code, out, err) = ctl(&["--socket", socket.to_str().unwrap(), "--json", "vrrp"]).await;
    assert_eq!(code, 0, "n{}: {err}\n{}", i + 1, node_log(lab, i));
    serde_json::from_str(&out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vrrp_status_names_the_master_on_both_nodes() {
    let mut lab = Lab::new(2);
    let _who = (start_who_backend(&lab, 0), start_who_backend(&lab, 1));
    start_tandem(&mut lab, 0, &NodeSpec::new(150, "100ms"));
    start_tandem(&mut lab, 1, &NodeSpec::new(100, "100ms"));
    assert!(
        wait_stable_holder(&lab, 0, Duration::from_millis(500), Duration::from_secs(5)).await,
        "n1 holds the VIP\n{}",
        node_log(&lab, 0)
    );

    let master = vrrp_json(&lab, 0).await;
    let m = &master["instances"][0];
    assert_eq!(m["group"], "front");
    assert_eq!(m["vrid"], VRID);
    assert_eq!(m["state"], "MASTER");
    assert_eq!(m["priority"], 150);
    assert_eq!(m["effective_priority"], 150);
    assert_eq!(m["holds_addresses"], true);
    assert_eq!(m["last_transition"]["to"], "MASTER", "{m}");
    assert!(m["last_transition"]["at"].as_u64().unwrap() > 0);

    // The backup learns the master's address from its adverts (bounded wait).
    let mut backup = Value::Null;
    for _ in 0..100 {
        backup = vrrp_json(&lab, 1).await;
        if backup["instances"][0]["master"] == lab.nodes[0].ip.to_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b = &backup["instances"][0];
    assert_eq!(b["state"], "BACKUP", "{b}");
    assert_eq!(b["priority"], 100);
    assert_eq!(b["holds_addresses"], false);
    assert_eq!(b["master"], lab.nodes[0].ip.to_string(), "{b}");

    let socket = admin_socket(&lab, 0);
    let (code, out, _) = ctl(&["--socket", socket.to_str().unwrap(), "vrrp"]).await;
    assert_eq!(code, 0);
    assert!(out.starts_with("GROUP"), "{out}");
    assert!(
        out.contains("front") && out.contains("MASTER") && out.contains("held"),
        "{out}"
    );
}
