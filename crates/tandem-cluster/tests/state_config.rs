//! Replicated config: applied when newer and valid, refused otherwise with
//! check-config's own message, and a refusal changes nothing.

use tandem_cluster::state::{ClusterState, Command, Outcome};

mod state_common;

/// Pool "app" with a sticky table of 3 and the given backends.
fn cluster(version: u64, backends: &[&str]) -> String {
    state_common::cluster(version, 3, backends)
}

fn apply(state: &mut ClusterState, version: u64, toml: &str) -> Outcome {
    state.apply(&Command::ApplyConfig {
        version,
        toml: toml.into(),
    })
}

fn refused(outcome: Outcome) -> String {
    match outcome {
        Outcome::ConfigRefused { reason } => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn applies_newer_valid_configs() {
    let mut state = ClusterState::default();
    assert_eq!(state.config(), None);
    let v1 = cluster(1, &["a1", "a2"]);
    assert_eq!(
        apply(&mut state, 1, &v1),
        Outcome::ConfigApplied { version: 1 }
    );
    assert_eq!(state.config(), Some((1, v1.as_str())));
    assert_eq!(state.sticky_capacity("app"), 3);
    let v5 = cluster(5, &["a1"]);
    assert_eq!(
        apply(&mut state, 5, &v5),
        Outcome::ConfigApplied { version: 5 }
    );
    assert_eq!(state.config(), Some((5, v5.as_str())));
}

#[test]
fn refuses_older_or_equal_versions() {
    let mut state = ClusterState::default();
    apply(&mut state, 3, &cluster(3, &["a1"]));
    let before = state.to_snapshot();
    for version in [3, 2] {
        let reason = refused(apply(&mut state, version, &cluster(version, &["a1", "a2"])));
        assert!(
            reason.contains("is not newer than the applied version 3"),
            "{reason}"
        );
    }
    assert_eq!(state.to_snapshot(), before);
}

#[test]
fn refuses_invalid_configs_with_check_configs_message() {
    let mut state = ClusterState::default();
    let reason = refused(apply(&mut state, 1, &cluster(1, &["a1", "a1"])));
    assert!(
        reason.contains("pool[0].backend[1].id: duplicate backend id \"a1\" in pool \"app\""),
        "{reason}"
    );
    assert!(reason.starts_with("replicated config v1"), "{reason}");

    let reason = refused(apply(&mut state, 1, "version = 1\n[[listener]\n"));
    assert!(reason.starts_with("replicated config v1:2:"), "{reason}");

    let reason = refused(apply(
        &mut state,
        1,
        &cluster(1, &["a1"]).replace("0.0.0.0:8080", "0.0.0.0:0"),
    ));
    assert!(reason.contains("listener[0].bind: port 0"), "{reason}");
    assert_eq!(state, ClusterState::default());
}

#[test]
fn refuses_a_version_that_disagrees_with_the_text() {
    let mut state = ClusterState::default();
    let reason = refused(apply(&mut state, 2, &cluster(1, &["a1"])));
    assert!(
        reason.contains("the text says version = 1 but it was proposed as version 2"),
        "{reason}"
    );
}

#[test]
fn refuses_a_node_section() {
    let mut state = ClusterState::default();
    let text = format!("{}\n[node]\nid = \"lb1\"\n", cluster(1, &["a1"]));
    let reason = refused(apply(&mut state, 1, &text));
    assert!(
        reason.contains("must not carry a [node] section"),
        "{reason}"
    );
    assert_eq!(state.config(), None);
}

#[test]
fn a_config_survives_a_snapshot() {
    let mut state = ClusterState::default();
    apply(&mut state, 1, &cluster(1, &["a1", "a2"]));
    let restored = ClusterState::from_snapshot(&state.to_snapshot()).unwrap();
    assert_eq!(restored, state);
    assert_eq!(restored.config(), state.config());
}
