//! `tandemctl cluster status|join|leave`, `tandemctl config apply` and `tandemctl vip
//! move|force-hold`: the cluster over the admin API of the local tandemd.

use clap::Subcommand;
use http::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::process::ExitCode;

use crate::client::{self, Client, Failure};
use crate::print;
use crate::table::Table;

#[derive(Subcommand)]
pub enum VipCommand {
    /// Move a vip_group to NODE and keep it there (release, then acquire: no lease wait).
    /// `--auto` unpins it: VRRP priorities decide again.
    Move {
        group: String,
        /// Node name or raft id.
        #[arg(required_unless_present = "auto")]
        node: Option<String>,
        #[arg(long, conflicts_with = "node")]
        auto: bool,
    },
    /// DISASTER OVERRIDE: hold the group's VIP on this node without a lease (for when the
    /// cluster has lost its majority). Split-brain protection is off for the group until
    /// `--off`. Logged loudly on the node.
    ForceHold {
        group: String,
        /// Turn the override off again.
        #[arg(long)]
        off: bool,
        /// Confirm you understand that two nodes may then hold the VIP.
        #[arg(long, required_unless_present = "off")]
        yes_i_know: bool,
    },
}

pub async fn status(client: &Client, as_json: bool) -> Result<ExitCode, Failure> {
    print(as_json, &client.get("/v1/cluster").await?, show_status);
    Ok(ExitCode::SUCCESS)
}

pub async fn join(client: &Client, seed: &str, as_json: bool) -> Result<ExitCode, Failure> {
    let answer = client
        .json(
            Method::POST,
            "/v1/cluster/join",
            Some(json!({ "seed": seed })),
        )
        .await?;
    print(as_json, &answer, |v| {
        format!(
            "joined through {seed}: voters {}\n",
            v["joined"]["Membership"]["voters"]
        )
    });
    Ok(ExitCode::SUCCESS)
}

pub async fn leave(client: &Client, node: &str, as_json: bool) -> Result<ExitCode, Failure> {
    let answer = client
        .json(
            Method::POST,
            "/v1/cluster/leave",
            Some(json!({ "node": node })),
        )
        .await?;
    print(as_json, &answer, |v| {
        format!(
            "node {} removed: voters {}\n",
            v["removed"], v["membership"]["Membership"]["voters"]
        )
    });
    Ok(ExitCode::SUCCESS)
}

pub async fn apply(client: &Client, file: &Path, as_json: bool) -> Result<ExitCode, Failure> {
    let text = match std::fs::read(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tandemctl: cannot read {}: {e}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let origin = file.display().to_string();
    let path = format!("/v1/config/apply?origin={}", client::encode_query(&origin));
    let answer = client
        .call_json(Method::POST, &path, Some((text.into(), "application/toml")))
        .await?;
    print(as_json, &answer, |v| {
        format!(
            "{origin}: version {} committed; every node applies it now (see `tandemctl cluster status`)\n",
            v["applied_version"]
        )
    });
    Ok(ExitCode::SUCCESS)
}

pub async fn vip(client: &Client, command: VipCommand, as_json: bool) -> Result<ExitCode, Failure> {
    let answer = match command {
        VipCommand::Move { group, node, .. } => {
            client
                .json(
                    Method::POST,
                    "/v1/vip/move",
                    Some(json!({ "group": group, "node": node })),
                )
                .await?
        }
        VipCommand::ForceHold { group, off, .. } => {
            client
                .json(
                    Method::POST,
                    "/v1/vip/force-hold",
                    Some(json!({ "group": group, "on": !off })),
                )
                .await?
        }
    };
    print(as_json, &answer, |v| match v.get("message") {
        Some(m) => format!("{}\n", m.as_str().unwrap_or_default()),
        None => match &v["pinned_to"] {
            Value::Null => format!(
                "{}: unpinned; VRRP priorities decide\n",
                v["group"].as_str().unwrap_or("")
            ),
            node => format!(
                "{}: pinned to node {node}; the VIP moves there\n",
                v["group"].as_str().unwrap_or("")
            ),
        },
    });
    Ok(ExitCode::SUCCESS)
}

fn opt(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn show_status(v: &Value) -> String {
    let raft = &v["raft"];
    let mut text = format!(
        "node {} ({}), {}: {}, term {}, leader {}, commit {}, applied {}\n",
        raft["id"],
        opt(&raft["name"]),
        opt(&v["role"]).to_lowercase(),
        opt(&raft["state"]),
        raft["term"],
        opt(&raft["leader"]),
        opt(&raft["commit_index"]),
        opt(&raft["applied_index"]),
    );
    text.push_str(&format!(
        "config: replicated version {}, running version {}{}\n\n",
        opt(&raft["config_version"]),
        v["running_config_version"],
        v["config"]["error"]
            .as_str()
            .map(|e| format!(" (refused here: {e})"))
            .unwrap_or_default()
    ));
    let mut members = Table::new(&["MEMBER", "ADDRESS", "VOTER", "LAST CONTACT", "MATCHED"]);
    for m in raft["members"].as_array().into_iter().flatten() {
        let contact = m["last_contact_ms"]
            .as_u64()
            .map_or("never".to_string(), |ms| format!("{ms}ms ago"));
        let voter = if m["voter"] == true { "yes" } else { "learner" };
        members.row(vec![
            m["id"].to_string(),
            opt(&m["addr"]),
            voter.into(),
            contact,
            opt(&m["matched_index"]),
        ]);
    }
    text.push_str(&members.render());
    let mut groups = Table::new(&["VIP GROUP", "HOLDER", "EPOCH", "PINNED TO", "THIS NODE"]);
    let local: Vec<&Value> = v["vip_groups"].as_array().into_iter().flatten().collect();
    for l in raft["leases"].as_array().into_iter().flatten() {
        let group = l["group"].as_str().unwrap_or_default();
        let here = local
            .iter()
            .find(|g| g["group"] == group)
            .map_or("-".to_string(), |g| {
                if g["forced"] == true {
                    "FORCE-HOLD (no lease)".into()
                } else if g["holding"] == true {
                    format!("holding, {}ms left", g["hold_left_ms"])
                } else if g["wants"] == true {
                    "wants it, waiting for the lease".into()
                } else {
                    "backup".into()
                }
            });
        groups.row(vec![
            group.to_string(),
            opt(&l["holder"]),
            l["epoch"].to_string(),
            opt(&l["pinned_to"]),
            here,
        ]);
    }
    text.push('\n');
    text.push_str(&groups.render());
    text.push_str(&format!("\nsticky entries: {}\n", raft["sticky_entries"]));
    text
}
