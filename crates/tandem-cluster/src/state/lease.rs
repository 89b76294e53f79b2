//! The lease rules as applied by the state machine: compare-and-set, holder checks,
//! epochs. No time here: who may propose what and when is [`super::clock`]'s business, on
//! the proposing node.

use super::command::{Lease, LeaseCommand, Outcome};
use std::collections::BTreeMap;

/// Applies one lease command to the table of leases (one per vip_group; a group with no
/// entry has the default, empty lease). Refusals change nothing, so a group that was never
/// granted anything stays absent from the table.
pub(crate) fn apply(leases: &mut BTreeMap<String, Lease>, command: &LeaseCommand) -> Outcome {
    let group = command.group();
    let current = leases.get(group).copied().unwrap_or_default();
    let next = match *command {
        LeaseCommand::Acquire { node, seen, .. } => {
            // The contender waited out the old holder's hold window *after seeing `seen`*;
            // any change since then (a renewal) restarts that wait, so it must lose.
            if current.version() == seen {
                new_epoch(current, node)
            } else {
                None
            }
        }
        LeaseCommand::Renew { node, epoch, .. } if held_by(current, node, epoch) => current
            .seq
            .checked_add(1)
            .map(|seq| Lease { seq, ..current }),
        LeaseCommand::Release { node, epoch, .. } if held_by(current, node, epoch) => {
            current.seq.checked_add(1).map(|seq| Lease {
                holder: None,
                seq,
                ..current
            })
        }
        LeaseCommand::Renew { .. } | LeaseCommand::Release { .. } => None,
        LeaseCommand::ForceHold { node, .. } => new_epoch(current, node),
    };
    match next {
        Some(lease) => {
            leases.insert(group.to_string(), lease);
            Outcome::LeaseGranted {
                group: group.to_string(),
                lease,
            }
        }
        None => Outcome::LeaseRefused {
            group: group.to_string(),
            current,
        },
    }
}

/// A fresh epoch held by `node`. `None` when the epoch counter is exhausted: refusing is
/// the only answer that keeps every (epoch, seq) pair unique, which the compare-and-set
/// relies on (2^64 acquisitions will not happen, but wrapping silently would be wrong).
fn new_epoch(current: Lease, node: u64) -> Option<Lease> {
    Some(Lease {
        holder: Some(node),
        epoch: current.epoch.checked_add(1)?,
        seq: 0,
    })
}

fn held_by(lease: Lease, node: u64, epoch: u64) -> bool {
    lease.holder == Some(node) && lease.epoch == epoch
}
