//! Every node applying the same commands reaches byte-identical state, and a snapshot
//! restores that state exactly, wherever in the log it was taken.

mod state_common;

use proptest::prelude::*;
use tandem_cluster::state::{ClusterState, Command, LeaseCommand, StickyRecord};

fn config_text(version: u64, variant: u8) -> String {
    match variant % 4 {
        0 => state_common::cluster(version, 4, &["a1", "a2"]),
        1 => state_common::cluster(version, 2, &["a2", "a3"]),
        2 => state_common::cluster(version, 6, &["a1", "a1"]), // invalid: duplicate id
        _ => format!("version = {version}\n[[listener]]\nname = \"x\""), // invalid
    }
}

fn command() -> impl Strategy<Value = Command> {
    let pool = prop::sample::select(vec!["app", "db"]).prop_map(String::from);
    let group = prop::sample::select(vec!["front", "back"]).prop_map(String::from);
    let record = (
        prop::collection::vec(0u8..6, 1..3),
        prop::sample::select(vec!["a1", "a2", "a3", "d1"]),
        0u64..1_000,
    )
        .prop_map(|(key, backend, expires_at_ms)| StickyRecord {
            key,
            backend: backend.into(),
            expires_at_ms,
        });
    let node = 1u64..=3;
    let small = 0u64..4;
    prop_oneof![
        (0u64..6, any::<u8>()).prop_map(|(version, variant)| Command::ApplyConfig {
            version,
            toml: config_text(version, variant),
        }),
        (pool, prop::collection::vec(record, 0..8))
            .prop_map(|(pool, entries)| Command::StickyBatch { pool, entries }),
        (0u64..1_000).prop_map(|now_ms| Command::PurgeSticky { now_ms }),
        (group.clone(), node.clone(), small.clone(), small.clone()).prop_map(
            |(group, node, e, s)| {
                Command::Lease(LeaseCommand::Acquire {
                    group,
                    node,
                    seen: (e, s),
                })
            }
        ),
        (group.clone(), node.clone(), small.clone()).prop_map(|(group, node, epoch)| {
            Command::Lease(LeaseCommand::Renew { group, node, epoch })
        }),
        (group.clone(), node.clone(), small).prop_map(|(group, node, epoch)| Command::Lease(
            LeaseCommand::Release { group, node, epoch }
        )),
        (group, node)
            .prop_map(|(group, node)| Command::Lease(LeaseCommand::ForceHold { group, node })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn same_log_same_bytes(commands in prop::collection::vec(command(), 0..60), cut in any::<prop::sample::Index>()) {
        let mut a = ClusterState::default();
        let mut b = ClusterState::default();
        let cut = cut.index(commands.len() + 1);
        let mut restored = None;
        for (i, command) in commands.iter().enumerate() {
            if i == cut {
                // A node that joins from a snapshot taken here.
                restored = Some(ClusterState::from_snapshot(&a.to_snapshot()).unwrap());
            }
            let out_a = a.apply(command);
            let out_b = b.apply(command);
            prop_assert_eq!(&out_a, &out_b);
            if let Some(r) = restored.as_mut() {
                prop_assert_eq!(r.apply(command), out_a);
            }
        }
        let bytes = a.to_snapshot();
        prop_assert_eq!(&bytes, &b.to_snapshot());
        if let Some(r) = restored {
            prop_assert_eq!(&r.to_snapshot(), &bytes);
        }
        let back = ClusterState::from_snapshot(&bytes).unwrap();
        prop_assert_eq!(&back, &a);
        prop_assert_eq!(back.to_snapshot(), bytes);
        // Tables stay within their capacity.
        for pool in ["app", "db"] {
            prop_assert!(a.sticky(pool).len() <= a.sticky_capacity(pool) as usize);
        }
    }
}
