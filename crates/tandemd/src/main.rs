use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tandemd::{init_logging, LogFormat, Node};

/// tandem: a high-availability load balancer (L4 TCP/UDP forwarding plane).
///
/// With no command, runs the built-in demo.
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
    /// Run a node from a config file (without --config: the built-in demo).
    Run {
        /// The TOML config file (see docs/config.md).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Run three built-in backends and listeners in front of them, on loopback.
    Demo {
        /// TCP listener port on 127.0.0.1.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// UDP listener port on 127.0.0.1.
        #[arg(long, default_value_t = 8053)]
        udp_port: u16,
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
    CheckConfig { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Some(Command::CheckConfig { file }) => return check_config(&file),
        Some(Command::Run { config: Some(file) }) => run_file(&file, false),
        Some(Command::Witness { config }) => run_file(&config, true),
        Some(Command::Run { config: None }) | None => run_demo(8080, 8053, false),
        Some(Command::Demo {
            port,
            udp_port,
            print_config,
        }) => run_demo(port, udp_port, print_config),
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

fn check_config(file: &std::path::Path) -> ExitCode {
    match tandem_config::load(file) {
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

fn run_demo(port: u16, udp_port: u16, print_config: bool) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let config = tandemd::demo::prepare(port, udp_port).await?;
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
