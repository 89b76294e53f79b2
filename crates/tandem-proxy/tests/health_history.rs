//! The per-backend ring of health changes that `tandemctl backends` and the admin API show.

use tandem_balance::Health;
use tandem_health::HealthSink;
use tandem_proxy::{Clock, SharedPool, HEALTH_HISTORY};

fn pool(backends: &[&str]) -> tandem_config::Pool {
    let mut text = String::from(
        "[[listener]]\nname = \"l\"\nbind = \"127.0.0.1:1\"\npool = \"p\"\n[[pool]]\nname = \"p\"\n",
    );
    for (i, id) in backends.iter().enumerate() {
        text.push_str(&format!(
            "[[pool.backend]]\nid = \"{id}\"\naddress = \"127.0.0.1:{}\"\n",
            9000 + i
        ));
    }
    let config = tandem_config::parse(&text, "t.toml").expect("valid test config");
    config.cluster.pools[0].clone()
}

#[test]
fn the_ring_keeps_the_latest_changes_with_their_reasons() {
    let shared = SharedPool::new(&pool(&["a", "b"]), Clock::new());
    for i in 0..HEALTH_HISTORY + 3 {
        let health = if i % 2 == 0 { Health::Down } else { Health::Up };
        shared.health_changed("a", health, &format!("change {i}"));
    }
    let history = shared.health_history("a");
    assert_eq!(history.len(), HEALTH_HISTORY);
    assert_eq!(history[0].reason, "change 3", "the oldest ones are dropped");
    assert_eq!(
        history.last().unwrap().reason,
        format!("change {}", HEALTH_HISTORY + 2)
    );
    assert!(history.windows(2).all(|w| w[0].at <= w[1].at));
    assert!(shared.health_history("b").is_empty());
    // The pool follows the last reported state.
    let a = shared.snapshot().into_iter().find(|b| b.id == "a").unwrap();
    assert_eq!(a.health, history.last().unwrap().health);
}

#[test]
fn unknown_and_removed_backends_have_no_history() {
    let shared = SharedPool::new(&pool(&["a", "b"]), Clock::new());
    shared.health_changed("ghost", Health::Down, "not in the pool");
    assert!(shared.health_history("ghost").is_empty());
    shared.health_changed("b", Health::Down, "refused");
    assert_eq!(shared.health_history("b").len(), 1);
    assert!(shared.reconfigure(&pool(&["a"])));
    assert!(
        shared.health_history("b").is_empty(),
        "a removed backend's history goes with it"
    );
}
