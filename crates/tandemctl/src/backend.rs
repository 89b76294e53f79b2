//! `tandemctl backend ...`: one backend's state, weight, membership. Each is one API call;
//! `drain --wait` then polls until the backend's last connection has ended.

use clap::Subcommand;
use http::Method;
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::Duration;

use crate::client::{Client, Failure};
use crate::{duration, out, print, seg, show, table};

#[derive(Subcommand)]
pub enum BackendCommand {
    /// One backend in full, with its health history.
    Show { pool: String, id: String },
    /// Take no new connections; open ones finish.
    Drain {
        pool: String,
        id: String,
        /// Wait until its last connection has ended.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, default_value = "30s", value_parser = duration)]
        timeout: Duration,
    },
    /// Take new connections again.
    Enable { pool: String, id: String },
    /// Take nothing new (like drain; the intent is "out of service").
    Disable { pool: String, id: String },
    /// Set the balancing weight (0 to 10000).
    Weight {
        pool: String,
        id: String,
        weight: u32,
    },
    /// Add a backend to a pool.
    Add {
        pool: String,
        id: String,
        /// IP:port, host:port (every A/AAAA record of the name) or an SRV name
        /// (_http._tcp.example.com: port and weight from its records).
        address: String,
        #[arg(long, default_value_t = 1)]
        weight: u32,
        /// Concurrent connections (0 = unlimited).
        #[arg(long, default_value_t = 0)]
        max_connections: u32,
    },
    /// Remove a backend; its open connections finish on their own.
    Remove { pool: String, id: String },
}

pub async fn run(
    client: &Client,
    action: BackendCommand,
    as_json: bool,
) -> Result<ExitCode, Failure> {
    let at = |pool: &str, id: &str| format!("/v1/pools/{}/backends/{}", seg(pool), seg(id));
    let changed = |v: &Value| {
        format!(
            "{}{}",
            show::backend(&v["backend"]),
            show::applied(&v["applied"])
        )
    };
    match action {
        BackendCommand::Show { pool, id } => {
            print(as_json, &client.get(&at(&pool, &id)).await?, show::backend)
        }
        BackendCommand::Enable { pool, id } => {
            let v = client
                .json(Method::POST, &format!("{}/enable", at(&pool, &id)), None)
                .await?;
            print(as_json, &v, changed);
        }
        BackendCommand::Disable { pool, id } => {
            let v = client
                .json(Method::POST, &format!("{}/disable", at(&pool, &id)), None)
                .await?;
            print(as_json, &v, changed);
        }
        BackendCommand::Drain {
            pool,
            id,
            wait,
            timeout,
        } => {
            let v = client
                .json(Method::POST, &format!("{}/drain", at(&pool, &id)), None)
                .await?;
            if !wait {
                print(as_json, &v, changed);
                return Ok(ExitCode::SUCCESS);
            }
            if !as_json {
                out(&changed(&v));
            }
            return wait_drained(client, &at(&pool, &id), timeout, as_json).await;
        }
        BackendCommand::Weight { pool, id, weight } => {
            let v = client
                .json(
                    Method::PUT,
                    &format!("{}/weight", at(&pool, &id)),
                    Some(json!({ "weight": weight })),
                )
                .await?;
            print(as_json, &v, changed);
        }
        BackendCommand::Add {
            pool,
            id,
            address,
            weight,
            max_connections,
        } => {
            let body = json!({ "id": id, "address": address, "weight": weight,
                "max_connections": max_connections });
            let v = client
                .json(
                    Method::POST,
                    &format!("/v1/pools/{}/backends", seg(&pool)),
                    Some(body),
                )
                .await?;
            print(as_json, &v, |v| {
                format!("added to pool {pool}: {}", changed(v))
            });
        }
        BackendCommand::Remove { pool, id } => {
            let v = client.json(Method::DELETE, &at(&pool, &id), None).await?;
            print(as_json, &v, |v| {
                format!(
                    "removed backend {id} from pool {pool}; its open connections finish on their own\n{}",
                    show::applied(&v["applied"])
                )
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Polls the backend until it is drained (draining, no connection left) or `timeout`.
async fn wait_drained(
    client: &Client,
    path: &str,
    timeout: Duration,
    as_json: bool,
) -> Result<ExitCode, Failure> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let b = client.get(path).await?;
        if b["drained"].as_bool() == Some(true) {
            print(as_json, &b, |b| {
                format!(
                    "backend {} is drained: no connection left\n",
                    table::cell(&b["id"])
                )
            });
            return Ok(ExitCode::SUCCESS);
        }
        if b["state"].as_str() != Some("drain") {
            eprintln!(
                "tandemctl: backend {} is {} now (someone changed it); not waiting",
                table::cell(&b["id"]),
                table::cell(&b["state"])
            );
            return Ok(ExitCode::FAILURE);
        }
        if tokio::time::Instant::now() >= deadline {
            if as_json {
                print(true, &b, |_| String::new());
            }
            eprintln!(
                "tandemctl: backend {} still has {} active connection(s) after {}; it stays in drain",
                table::cell(&b["id"]),
                table::cell(&b["active"]),
                tandem_config::format_duration(timeout)
            );
            return Ok(ExitCode::FAILURE);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
