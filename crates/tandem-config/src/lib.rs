//! tandem's configuration: one TOML file, parsed into [`Config`] and validated.
//!
//! Every error names the file, the key path (`pool[0].backend[1].weight`) and what is wrong,
//! so an operator can fix it without reading code.

pub mod acme;
pub mod backend_address;
pub mod cluster;
pub mod compression;
pub mod dns;
mod duration;
mod error;
pub mod header_rules;
pub mod http;
mod model;
mod validate;
mod validate_headers;
mod validate_http;
mod validate_vrrp;
pub mod vrrp;

pub use backend_address::BackendAddress;
pub use duration::{format_duration, parse_duration, HumanDuration};
pub use error::{ConfigError, Problem};
pub use model::*;
pub use validate::{is_prime, validate_cluster};

use serde::{Deserialize, Serialize};
use std::path::Path;

/// The file as written: `[node]` plus the cluster-wide keys at top level.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    node: NodeConfig,
    #[serde(default = "one")]
    version: u64,
    #[serde(default)]
    listener: Vec<Listener>,
    #[serde(default)]
    pool: Vec<Pool>,
    #[serde(default)]
    vip_group: Vec<vrrp::VipGroup>,
}

fn one() -> u64 {
    1
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let origin = path.display().to_string();
    parse(&read(path, &origin)?, &origin)
}

/// [`load`] for `tandemd witness`: the file is validated as a witness's
/// (`node.cluster.role = "witness"` whatever the file says), so it needs no listener.
pub fn load_witness(path: &Path) -> Result<Config, ConfigError> {
    let origin = path.display().to_string();
    let mut config = deserialize(&read(path, &origin)?, &origin)?;
    match config.node.cluster.as_mut() {
        Some(cluster) => cluster.role = cluster::Role::Witness,
        None => {
            return Err(ConfigError::single(
                &origin,
                "node.cluster",
                "a witness needs [node.cluster] (raft_id, listen, advertise, cert_dir)",
            ))
        }
    }
    checked(config, &origin, Strictness::File)
}

/// How a config is judged. Configs written by an operator (a file, `config apply`) are
/// refused for keys that do not apply to a listener's protocol; configs already in the
/// replicated log are not, because versions before that rule wrote such keys themselves
/// (defaults serialized for every listener), and replaying the log must not refuse them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Strictness {
    File,
    Replicated,
}

fn read(path: &Path, origin: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| {
        ConfigError::single(
            origin,
            "",
            format!("cannot read the file: {e}; check the path and its permissions"),
        )
    })
}

/// Parses and validates config text; `origin` names it in errors (usually the path).
pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
    checked(deserialize(text, origin)?, origin, Strictness::File)
}

/// [`parse`] for a config from the replicated log: the same checks, except that keys
/// which do not apply to a listener's protocol are ignored rather than refused (see
/// `Strictness`).
pub fn parse_replicated(text: &str, origin: &str) -> Result<Config, ConfigError> {
    checked(deserialize(text, origin)?, origin, Strictness::Replicated)
}

fn checked(
    mut config: Config,
    origin: &str,
    strictness: Strictness,
) -> Result<Config, ConfigError> {
    let mut problems = all_problems(&config);
    match strictness {
        Strictness::File => problems.extend(inapplicable_keys(&config.cluster)),
        Strictness::Replicated => {
            for l in &mut config.cluster.listeners {
                l.clear_inapplicable();
            }
        }
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::new(origin, problems))
    }
}

fn deserialize(text: &str, origin: &str) -> Result<Config, ConfigError> {
    let de = toml::Deserializer::parse(text)
        .map_err(|e| ConfigError::from_toml(origin, "", &e, text))?;
    let file: FileConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        ConfigError::from_toml(origin, &path, e.inner(), text)
    })?;
    let config = Config {
        node: file.node,
        cluster: ClusterConfig {
            version: file.version,
            listeners: file.listener,
            pools: file.pool,
            vip_groups: file.vip_group,
        },
    };
    Ok(config)
}

fn all_problems(config: &Config) -> Vec<Problem> {
    let mut problems = validate::validate_node(&config.node);
    let witness = config
        .node
        .cluster
        .as_ref()
        .is_some_and(|c| c.role == cluster::Role::Witness);
    let empty = config.cluster.listeners.is_empty() && config.cluster.vip_groups.is_empty();
    problems.extend(
        validate_cluster(&config.cluster)
            .into_iter()
            // A witness forwards nothing: a file with only [node] is its whole config.
            .filter(|p| !(witness && empty && p.path == "listener")),
    );
    problems.extend(validate_vrrp::validate_node_vrrp(
        &config.node,
        &config.cluster,
    ));
    problems
}

/// Keys written in a listener that its protocol does not use.
fn inapplicable_keys(cluster: &ClusterConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (i, l) in cluster.listeners.iter().enumerate() {
        for (key, why) in l.inapplicable_keys() {
            let protocol = match l.protocol {
                Protocol::Tcp => "tcp",
                Protocol::Udp => "udp",
                Protocol::Http => "http",
            };
            problems.push(Problem {
                path: format!("listener[{i}].{key}"),
                line: None,
                message: format!("does not apply to a {protocol} listener: {why}"),
            });
        }
    }
    problems
}

/// Every problem of a whole config (node and cluster parts), one "key.path: message"
/// line each, as check-config prints them. Used to validate runtime changes.
pub fn validate_config(config: &Config) -> Vec<String> {
    all_problems(config)
        .into_iter()
        .chain(inapplicable_keys(&config.cluster))
        .map(|p| {
            if p.path.is_empty() {
                p.message
            } else {
                format!("{}: {}", p.path, p.message)
            }
        })
        .collect()
}

/// Writes a config back as TOML (the same layout `parse` reads).
pub fn to_toml(config: &Config) -> String {
    let file = FileConfig {
        node: config.node.clone(),
        version: config.cluster.version,
        listener: config.cluster.listeners.clone(),
        pool: config.cluster.pools.clone(),
        vip_group: config.cluster.vip_groups.clone(),
    };
    toml::to_string_pretty(&file).expect("the config model always serializes to TOML")
}
