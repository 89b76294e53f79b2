use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tandemd::{init_logging, LogFormat, Node};

/// tandem: a high-availability load balancer (VRRP, L4 TCP/UDP and L7 HTTP planes).
///
/// With no command, runs the built-in demo (`tandemd demo`). A node runs with
/// `tandemd run`, which never falls back to the demo.
#[derive(Parser)]
#[command(name = "tandemd", version, propagate_version = true)]
struct Cli {
    /// Log format on stderr. The level comes from RUST_LOG (default: info).
    #[arg(long, value_enum, default_value = "human", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a node from a config file. Without --config it reads /etc/tandem/tandem.toml,
    /// and fails if that file is missing: it never serves the demo.
    Run {
        /// The TOML config file (see docs/config.md).
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Run three built-in backends on loopback with TCP, HTTP and UDP listeners in front
    /// of them, and a status page.
    Demo {
        /// TCP listener port on 127.0.0.1.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// HTTP (L7) listener port on 127.0.0.1.
        #[arg(long, default_value_t = 8081)]
        http_port: u16,
        /// UDP listener port on 127.0.0.1.
        #[arg(long, default_value_t = 8053)]
        udp_port: u16,
        /// Status page port on 127.0.0.1 (read-only: /, /status, /metrics).
        #[arg(long, default_value_t = 8404)]
        status_port: u16,
        /// Print the demo's config and exit.
        #[arg(long)]
        print_config: bool,
    },
    /// Run a witness: a Raft voter with no VIP and no forwarding plane, the third vote
    /// that lets two forwarding nodes survive the loss of either. Its config needs only
    /// [node] and [node.cluster].
    Witness {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file; exit 1 with every problem (file, key path, what is wrong).
    /// The systemd units run it before a reload, so `systemctl reload` fails on a bad file.
    CheckConfig {
        file: PathBuf,
        /// Check it as a witness's config (`tandemd witness`): [node] and [node.cluster].
        #[arg(long)]
        witness: bool,
    },
}

/// Where `tandemd run` looks when no --config is given (the path the packages install).
const DEFAULT_CONFIG: &str = "/etc/tandem/tandem.toml";

fn main() -> ExitCode {
    // `tandemd generate-docs DIR`: man pages and completions, for packaging.
    if let Some(code) = tandem_cli_docs::generate_if_asked(Cli::command) {
        return code;
    }
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Some(Command::CheckConfig { file, witness }) => return check_config(&file, witness),
        Some(Command::Run { config }) => run_file(&config, false),
        Some(Command::Witness { config }) => run_file(&config, true),
        None => run_demo(tandemd::demo::Ports::default(), false),
        Some(Command::Demo {
            port,
            http_port,
            udp_port,
            status_port,
            print_config,
        }) => run_demo(
            tandemd::demo::Ports {
                tcp: port,
                http: http_port,
                udp: udp_port,
                status: status_port,
            },
            print_config,
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tandemd: {e:#}");
            tandemd::systemd::status(&format!("failed: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &std::path::Path, witness: bool) -> ExitCode {
    let loaded = if witness {
        tandem_config::load_witness(file)
    } else {
        tandem_config::load(file)
    };
    match loaded {
        Ok(cfg) => {
            let problems = tandemd::check_files(&cfg);
            if !problems.is_empty() {
                for p in problems {
                    eprintln!("{}: {p}", file.display());
                }
                return ExitCode::FAILURE;
            }
            println!(
                "{}: ok ({} listeners, {} pools, {} backends)",
                file.display(),
                cfg.cluster.listeners.len(),
                cfg.cluster.pools.len(),
                cfg.cluster
                    .pools
                    .iter()
                    .map(|p| p.backends.len())
                    .sum::<usize>()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tandem-worker")
        .build()?)
}

fn run_file(file: &std::path::Path, witness: bool) -> anyhow::Result<()> {
    if !file.exists() {
        // The usual slip: a unit or a command line that lost its --config. Say so rather
        // than serve anything.
        anyhow::bail!(
            "{}: no such config file; write one (examples in /usr/share/doc/tandem/examples \
             or config/ in the source), check it with `tandemd check-config FILE`, or pass \
             --config FILE. The built-in demo runs only as `tandemd demo`.",
            file.display()
        );
    }
    let mut config = if witness {
        tandem_config::load_witness(file)
    } else {
        tandem_config::load(file)
    }
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if witness {
        config = tandemd::witness_config(config)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    }
    let problems = tandemd::check_files(&config);
    if !problems.is_empty() {
        anyhow::bail!("{}: {}", file.display(), problems.join("\n"));
    }
    runtime()?.block_on(async {
        // Bound before the node starts: a taken admin socket stops start-up before any
        // listener or VIP is touched.
        let admin = tandemd::admin::bind(&config.node).await?;
        let node = Node::start_with_vrrp(config).await?;
        node.set_config_path(file.to_path_buf());
        serve_until_signal(node, admin).await
    })
}

fn run_demo(ports: tandemd::demo::Ports, print_config: bool) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let config = tandemd::demo::prepare(ports).await?;
        if print_config {
            print!("{}", tandem_config::to_toml(&config));
            return Ok(());
        }
        let admin = tandemd::admin::bind(&config.node).await?;
        let node = Node::start(config)?;
        println!("{}", tandemd::demo::banner(&node.config()));
        serve_until_signal(node, admin).await
    })
}

/// Runs the node with its admin API until a stop signal. The API keeps answering during
/// the drain (so `tandemctl status` can watch connections finish) and stops last.
async fn serve_until_signal(
    node: std::sync::Arc<Node>,
    admin: tandemd::admin::AdminListeners,
) -> anyhow::Result<()> {
    let admin = admin.serve(node.clone());
    let result = tandemd::run_until_signal(node).await;
    admin.stop().await;
    result
}
