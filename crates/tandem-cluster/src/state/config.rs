//! Checking a replicated config before it is applied.
//!
//! The check is `tandem_config::parse_replicated`: the checks `tandemd check-config` runs
//! (bar refusing keys that do not apply, which older versions wrote themselves), so an
//! operator sees the same message (file, key path, what is wrong) whether the config was
//! refused locally or by the cluster. It is deterministic (ordered output, no I/O), so
//! every node accepts or refuses alike, as long as all nodes run the same validation code:
//! a rolling upgrade that changes the rules must not replicate a config that the old and
//! new rules judge differently.

use tandem_config::{ClusterConfig, NodeConfig};

/// The parsed cluster part of `toml`, or why it cannot be applied over `current` (the
/// applied version, if any).
pub(crate) fn check(
    current: Option<u64>,
    version: u64,
    toml: &str,
) -> Result<ClusterConfig, String> {
    if let Some(current) = current {
        if version <= current {
            return Err(format!(
                "version {version} is not newer than the applied version {current}; \
                 bump `version` to at least {}",
                current.saturating_add(1)
            ));
        }
    }
    let origin = format!("replicated config v{version}");
    let config = tandem_config::parse_replicated(toml, &origin).map_err(|e| e.to_string())?;
    // A [node] section belongs to one machine; replicating it would hand every node the
    // proposer's id and directories. An empty or all-default one cannot be told apart
    // after parsing and is harmless.
    if config.node != NodeConfig::default() {
        return Err(format!(
            "{origin}: node: the replicated config must not carry a [node] section \
             (node settings are local to each machine)"
        ));
    }
    // The version in the command orders configs; the one in the text is what status shows.
    // They must be the same number or the two would disagree about what is applied.
    if config.cluster.version != version {
        return Err(format!(
            "{origin}: version: the text says version = {} but it was proposed as version {version}",
            config.cluster.version
        ));
    }
    Ok(config.cluster)
}
