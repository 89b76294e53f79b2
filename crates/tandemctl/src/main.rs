//! tandemctl: the operator's command line for a running tandemd, over its admin API
//! (the Unix socket by default, or TCP with a bearer token). Tables for people, `--json`
//! (the API's own JSON) for scripts. `cluster init` is the exception: it runs locally, before
//! there is a cluster, and writes the cluster's TLS certificates.
//!
//! Exit codes: 0 done; 1 tandemd refused the request or reported problems; 2 bad command
//! line; 3 tandemd could not be reached.

mod backend;
mod client;
mod cluster;
mod members;
mod show;
mod table;
mod top;

use clap::{CommandFactory, Parser, Subcommand};
use http::Method;
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use client::{Client, Failure, Target};

/// Watch and steer a running tandemd.
#[derive(Parser)]
#[command(name = "tandemctl", version, propagate_version = true)]
struct Cli {
    /// tandemd's admin socket (node.admin_socket).
    #[arg(
        long,
        global = true,
        default_value = "/run/tandem/admin.sock",
        conflicts_with = "url"
    )]
    socket: PathBuf,
    /// The admin API over TCP instead (node.admin_tcp), e.g. http://10.0.0.5:9900.
    #[arg(long, global = true, requires = "token_file")]
    url: Option<String>,
    /// The bearer token for --url (a file holding it, like node.admin_token_file).
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The node: listeners with their counters, ACME certificates (state, expiry, renewal),
    /// pools with their backends.
    Status,
    /// Backends of every pool, or of one.
    Backends { pool: Option<String> },
    /// Change one backend at run time (no connection is dropped).
    Backend {
        #[command(subcommand)]
        action: backend::BackendCommand,
    },
    /// This node's VRRP instances.
    Vrrp,
    /// Re-read the config file and apply it (like SIGHUP); refused if it is invalid.
    Reload,
    /// Config files.
    Config {
        #[command(subcommand)]
        action: ConfigCommand,
    },
    /// Live rates per listener and backend.
    Top {
        /// Time between samples.
        #[arg(long, default_value = "1s", value_parser = duration)]
        interval: Duration,
        /// Stop after this many samples (default: until Ctrl-C).
        #[arg(long)]
        count: Option<u64>,
    },
    /// Cluster set-up, done locally: the CA and node certificates of the Raft transport.
    Cluster {
        #[command(subcommand)]
        action: cluster::ClusterCommand,
    },
    /// VIP placement: planned moves and the disaster override.
    Vip {
        #[command(subcommand)]
        action: members::VipCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a config file as tandemd would load it (certificates are read by tandemd).
    Check { file: PathBuf },
    /// Validate FILE with this node's [node] (check-config's messages), then propose its
    /// cluster part: every node hot-reloads it. Needs [node.cluster].
    Apply { file: PathBuf },
}

pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    match tandem_config::parse_duration(text)? {
        d if d.is_zero() => Err("must be more than 0s".into()),
        d => Ok(d),
    }
}

fn main() -> ExitCode {
    // `tandemctl generate-docs DIR`: man pages and completions, for packaging.
    if let Some(code) = tandem_cli_docs::generate_if_asked(Cli::command) {
        return code;
    }
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "tandemctl", &mut script);
        out(&String::from_utf8_lossy(&script));
        return ExitCode::SUCCESS;
    }
    if let Command::Cluster {
        action: action @ cluster::ClusterCommand::Init { .. },
    } = cli.command
    {
        return cluster::run(action);
    }
    let target = match target(&cli) {
        Ok(t) => t,
        Err(message) => {
            eprintln!("tandemctl: {message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tandemctl: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let client = Client::new(target);
    match runtime.block_on(run(&client, cli.command, cli.json)) {
        Ok(code) => code,
        Err(failure) => {
            if let (true, Failure::Refused { body, .. }) = (cli.json, &failure) {
                out(&format!("{body}\n"));
            }
            eprintln!("tandemctl: {failure}");
            ExitCode::from(match failure {
                Failure::Unreachable(_) => 3,
                _ => 1,
            })
        }
    }
}

fn target(cli: &Cli) -> Result<Target, String> {
    let Some(url) = &cli.url else {
        return Ok(Target::Unix(cli.socket.clone()));
    };
    if !url.starts_with("http://") {
        return Err(format!(
            "--url {url}: only http://HOST:PORT is supported (the admin API has no TLS)"
        ));
    }
    let file = cli.token_file.as_ref().ok_or("--url needs --token-file")?;
    let token = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read the token file {}: {e}", file.display()))?
        .trim()
        .to_string();
    Ok(Target::Tcp {
        url: url.clone(),
        token,
    })
}

/// A path segment from user input (pool and backend names are plain, but be safe).
pub(crate) fn seg(text: &str) -> String {
    client::encode_query(text).replace('/', "%2F")
}

/// Writes to stdout. A closed pipe (`tandemctl status | head -1`) ends the program
/// quietly instead of panicking like `print!` does.
pub(crate) fn out(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("tandemctl: writing the output: {e}");
        std::process::exit(1);
    }
}

pub(crate) fn print(as_json: bool, value: &Value, human: impl FnOnce(&Value) -> String) {
    if as_json {
        out(&format!(
            "{}\n",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ));
    } else {
        out(&human(value));
    }
}

async fn run(client: &Client, command: Command, as_json: bool) -> Result<ExitCode, Failure> {
    match command {
        Command::Status => print(as_json, &client.get("/v1/status").await?, show::status),
        Command::Backends { pool: None } => {
            print(as_json, &client.get("/v1/pools").await?, show::pools)
        }
        Command::Backends { pool: Some(p) } => print(
            as_json,
            &client.get(&format!("/v1/pools/{}", seg(&p))).await?,
            show::pool,
        ),
        Command::Vrrp => print(as_json, &client.get("/v1/vrrp").await?, show::vrrp),
        Command::Reload => {
            // ExecReload runs this: the journal line must say the old config still serves.
            let answer = client
                .json(Method::POST, "/v1/reload", None)
                .await
                .map_err(|failure| match failure {
                    Failure::Refused { message, body } => Failure::Refused {
                        message: format!(
                            "reload refused, tandemd keeps its running config: {message}"
                        ),
                        body,
                    },
                    other => other,
                })?;
            print(as_json, &answer, |v| {
                format!("reloaded: {}", show::applied(&v["applied"]))
            });
        }
        Command::Config {
            action: ConfigCommand::Check { file },
        } => return check(client, &file, as_json).await,
        Command::Top { interval, count } => top::run(client, interval, count, as_json).await?,
        Command::Backend { action } => return backend::run(client, action, as_json).await,
        Command::Config {
            action: ConfigCommand::Apply { file },
        } => return members::apply(client, &file, as_json).await,
        Command::Vip { action } => return members::vip(client, action, as_json).await,
        Command::Cluster {
            action: cluster::ClusterCommand::Status,
        } => return members::status(client, as_json).await,
        Command::Cluster {
            action: cluster::ClusterCommand::Join { seed },
        } => return members::join(client, &seed, as_json).await,
        Command::Cluster {
            action: cluster::ClusterCommand::Leave { node },
        } => return members::leave(client, &node, as_json).await,
        Command::Completions { .. }
        | Command::Cluster {
            action: cluster::ClusterCommand::Init { .. },
        } => {
            unreachable!("handled before connecting")
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn check(client: &Client, file: &PathBuf, as_json: bool) -> Result<ExitCode, Failure> {
    let text = match std::fs::read(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tandemctl: cannot read {}: {e}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let origin = file.display().to_string();
    let path = format!("/v1/config/check?origin={}", client::encode_query(&origin));
    let answer = client
        .call_json(Method::POST, &path, Some((text.into(), "application/toml")))
        .await?;
    let ok = answer["ok"].as_bool() == Some(true);
    if as_json {
        print(true, &answer, |_| String::new());
    } else if ok {
        out(&format!("{origin}: ok\n"));
    } else {
        for p in answer["problems"].as_array().into_iter().flatten() {
            eprintln!("{}", table::cell(p));
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
