use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// Logs to stderr. The filter comes from `RUST_LOG` (e.g. `info,tandem_proxy=debug`),
/// `info,rustls=error` by default.
pub fn init_logging(format: LogFormat) {
    // rustls warns on every handshake from clients that send an IP address as SNI
    // (RFC 6066 forbids it; HAProxy and nginx ignore it silently): keep that out by default.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rustls=error"));
    use std::io::IsTerminal;
    // Colours only on a terminal: files and journald get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
