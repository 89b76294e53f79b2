//! `tandemctl cluster ...`: cluster set-up done on the operator's machine, not over the admin
//! API (there is no cluster yet to talk to). `init` creates the cluster CA and one
//! certificate per node for the Raft transport's mutual TLS.

use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tandem_cluster::transport::pki::{self, ClusterPki, PkiError, PkiOptions};

use crate::out;

/// Where the printed instructions suggest putting a node's files.
const NODE_DIR: &str = "/etc/tandem/cluster";

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Create the cluster CA and a certificate per node (the witness too) in DIR.
    ///
    /// Each node name is what its peers dial (`NAME:port`) and what they verify its
    /// certificate against: a DNS name (or /etc/hosts entry) or an IP address.
    Init {
        /// Where to write ca.pem, ca.key and NODE.pem / NODE.key (created 0700 if missing).
        #[arg(long)]
        dir: PathBuf,
        /// Replace an existing CA and certificates; every node then needs its new files.
        #[arg(long)]
        force: bool,
        /// The node names.
        #[arg(required = true, value_name = "NODE")]
        nodes: Vec<String>,
    },
    /// Members, leader, term, commit index, last contact, VIP leases (over the admin API).
    Status,
    /// Join this node to a cluster through any member's cluster address (NAME:PORT): it is
    /// added as a learner, then as a voter once it has caught up.
    Join { seed: String },
    /// Remove a member (raft id or node name) from the cluster.
    Leave { node: String },
}

/// Runs locally. Exit codes as for the rest of tandemctl: 2 for names that cannot be used
/// (a command-line mistake), 1 for a refusal or a write error.
pub fn run(action: ClusterCommand) -> ExitCode {
    match action {
        ClusterCommand::Status | ClusterCommand::Join { .. } | ClusterCommand::Leave { .. } => {
            unreachable!("run over the admin API")
        }
        ClusterCommand::Init { dir, force, nodes } => {
            match pki::init_cluster_pki_with(&dir, &nodes, PkiOptions { force }) {
                Ok(written) => {
                    out(&instructions(&dir, &written));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tandemctl: {e}");
                    ExitCode::from(match e {
                        PkiError::NoNodes | PkiError::BadName { .. } | PkiError::Duplicate(_) => 2,
                        _ => 1,
                    })
                }
            }
        }
    }
}

/// What was written and what goes where.
fn instructions(dir: &Path, pki: &ClusterPki) -> String {
    let mut text = format!(
        "cluster CA and {} node certificate(s) written to {}\n\n\
         copy to each node, into {NODE_DIR}/ (keys mode 0600, owned by tandemd's user):\n",
        pki.nodes.len(),
        dir.display()
    );
    for node in &pki.nodes {
        text.push_str(&format!(
            "  {}:\t{} {} {}\n",
            node.name,
            pki.ca_cert.display(),
            node.cert.display(),
            node.key.display()
        ));
    }
    text.push_str(&format!(
        "\nkeep {} off the nodes (offline): whoever holds it can join the cluster.\n\
         peers reach each node at NAME:port, so each name must resolve to that node \
         (DNS or /etc/hosts).\n",
        pki.ca_key.display()
    ));
    text
}
