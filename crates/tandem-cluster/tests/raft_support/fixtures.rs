//! Commands the Raft tests replicate.

/// A cluster config the state machine accepts as version 2: top-level keys only, since a
/// replicated config must not carry the machine-local `[node]` section.
pub const CONFIG_V2: &str = r#"
version = 2

[[listener]]
name = "web"
bind = "127.0.0.1:8080"
pool = "web"

[[pool]]
name = "web"
[[pool.backend]]
id = "a"
address = "127.0.0.1:9001"
"#;
