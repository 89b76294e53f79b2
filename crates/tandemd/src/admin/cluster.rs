//! The cluster endpoints: status, join, leave, config apply, VIP move and the operator
//! override. Each refuses with `not_found` on a node without `[node.cluster]`.

use bytes::Bytes;
use http::{Response, StatusCode};
use serde::Deserialize;
use tandem_cluster::state::{Command, Outcome};

use super::error::{json_response, ApiError, Body, Code};
use crate::cluster::{resolve_member, ApiRefusal, Cluster};
use crate::Node;

fn cluster(node: &Node) -> Result<&Cluster, ApiError> {
    node.cluster().ok_or_else(|| {
        ApiError::not_found(
            "this node is not in a cluster: configure [node.cluster] (docs/cluster.md)",
        )
    })
}

impl From<ApiRefusal> for ApiError {
    fn from(e: ApiRefusal) -> Self {
        match e {
            ApiRefusal::Invalid(m) => ApiError::new(Code::Invalid, m),
            ApiRefusal::Unavailable(m) => ApiError::new(Code::Unavailable, m),
            ApiRefusal::Failed(m) => ApiError::new(Code::Failed, m),
        }
    }
}

use super::writes::parse_json as parse;

fn ok(value: serde_json::Value) -> Result<Response<Body>, ApiError> {
    Ok(json_response(StatusCode::OK, &value))
}

/// GET /v1/cluster
pub async fn status(node: &Node) -> Result<Response<Body>, ApiError> {
    let c = cluster(node)?;
    ok(serde_json::json!({
        "raft": c.status().await,
        "role": c.role,
        "config": c.config_follow(),
        "running_config_version": node.config().cluster.version,
        "vip_groups": c.keeper.views(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinBody {
    /// `<name>:<port>` of any member's cluster listener.
    seed: String,
}

/// POST /v1/cluster/join: this node asks the member at `seed` to add it.
pub async fn join(node: &Node, body: Bytes, who: &str) -> Result<Response<Body>, ApiError> {
    let c = cluster(node)?;
    let JoinBody { seed } = parse(&body)?;
    tracing::info!(who, %seed, "cluster join requested");
    let reply = c
        .node
        .join(&seed)
        .await
        .map_err(|e| ApiError::new(Code::Failed, e.to_string()))?;
    ok(serde_json::json!({ "joined": reply }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaveBody {
    /// Raft id or node name.
    node: String,
}

/// POST /v1/cluster/leave
pub async fn leave(node: &Node, body: Bytes, who: &str) -> Result<Response<Body>, ApiError> {
    let c = cluster(node)?;
    let LeaveBody { node: target } = parse(&body)?;
    let status = c.status().await;
    let id = resolve_member(&status, &target).ok_or_else(|| {
        ApiError::not_found(format!(
            "no member {target:?} (give its raft id or node name; see `tandemctl cluster status`)"
        ))
    })?;
    tracing::warn!(who, node = id, "cluster leave requested");
    let reply = c
        .node
        .remove(id)
        .await
        .map_err(|e| ApiError::new(Code::Failed, e.to_string()))?;
    ok(serde_json::json!({ "removed": id, "membership": reply }))
}

/// POST /v1/config/apply?origin=FILE with the config text as the body.
pub async fn apply_config(
    node: &Node,
    body: Bytes,
    origin: &str,
    who: &str,
) -> Result<Response<Body>, ApiError> {
    let c = cluster(node)?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::invalid(format!("{origin}: not UTF-8 text")))?;
    let version = c.propose_config(&node.config(), text, origin).await?;
    tracing::info!(who, version, %origin, "cluster config applied");
    ok(serde_json::json!({ "applied_version": version }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoveBody {
    group: String,
    /// Node name or raft id; null unpins.
    node: Option<String>,
}

/// POST /v1/vip/move: pin a group to a node (or unpin).
pub async fn move_vip(node: &Node, body: Bytes, who: &str) -> Result<Response<Body>, ApiError> {
    let c = cluster(node)?;
    let MoveBody {
        group,
        node: target,
    } = parse(&body)?;
    if !node
        .config()
        .cluster
        .vip_groups
        .iter()
        .any(|g| g.name == group)
    {
        return Err(ApiError::not_found(format!("no vip_group {group:?}")));
    }
    let pin = match &target {
        Some(t) => Some(resolve_member(&c.status().await, t).ok_or_else(|| {
            ApiError::not_found(format!("no member {t:?} (give its raft id or node name)"))
        })?),
        None => None,
    };
    if unfenced(node) {
        return Err(ApiError::invalid(
            "this node runs VRRP with fencing = \"none\": a pin moves VIPs only between nodes \
             that hold them under Raft leases (fencing = \"raft\")",
        ));
    }
    tracing::info!(who, %group, node = ?pin, "VIP move requested");
    match c
        .write(Command::Pin {
            group: group.clone(),
            node: pin,
        })
        .await?
    {
        Outcome::Pinned { group, node } => {
            ok(serde_json::json!({ "group": group, "pinned_to": node }))
        }
        other => Err(ApiError::new(
            Code::Failed,
            format!("unexpected outcome {other:?}"),
        )),
    }
}

/// Whether this node speaks VRRP without Raft fencing (leases and pins mean nothing to it).
fn unfenced(node: &Node) -> bool {
    use tandem_config::vrrp::Fencing;
    node.config()
        .node
        .vrrp
        .as_ref()
        .is_some_and(|v| v.fencing == Fencing::None)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForceBody {
    group: String,
    on: bool,
}

/// POST /v1/vip/force-hold: the disaster override.
pub async fn force_hold(node: &Node, body: Bytes, who: &str) -> Result<Response<Body>, ApiError> {
    let c = cluster(node)?;
    let ForceBody { group, on } = parse(&body)?;
    if unfenced(node) || node.config().node.vrrp.is_none() {
        return Err(ApiError::invalid(
            "nothing to override here: this node holds no VIP under a Raft lease \
             (no [node.vrrp], or fencing = \"none\")",
        ));
    }
    tracing::warn!(who, %group, on, "OPERATOR OVERRIDE requested: force-hold");
    let message = c
        .keeper
        .force_hold(&group, on)
        .await
        .map_err(ApiError::not_found)?;
    ok(serde_json::json!({ "group": group, "forced": on, "message": message }))
}
