//! Logging to stderr with tracing. Under systemd's journal (stderr is the stream named by
//! JOURNAL_STREAM) lines carry no timestamp (the journal stamps them) and start with a
//! syslog priority `<N>`, which journald strips and records, so `journalctl -p warning`
//! finds tandemd's warnings and errors.

use std::fmt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

/// The syslog priority of a tracing level (sd-daemon(3): `<3>` err ... `<7>` debug).
pub fn syslog_priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Whether stderr is the journal's stream: JOURNAL_STREAM is "<device>:<inode>" of it.
/// Compared with stderr itself, because a child whose stderr was redirected elsewhere
/// inherits the variable (systemd.exec(5) asks programs to check).
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    match nix::sys::stat::fstat(std::io::stderr()) {
        Ok(st) => st.st_dev == dev && st.st_ino == ino,
        Err(_) => false,
    }
}

/// Writes `<N>` before each event, then the inner format's line.
struct SyslogPrefix<F>(F);

impl<S, N, F> FormatEvent<S, N> for SyslogPrefix<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", syslog_priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Logs to stderr. The filter comes from `RUST_LOG` (e.g. `info,tandem_proxy=debug`),
/// `info,rustls=error` by default.
pub fn init_logging(format: LogFormat) {
    // rustls warns on every handshake from clients that send an IP address as SNI
    // (RFC 6066 forbids it; HAProxy and nginx ignore it silently): keep that out by default.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rustls=error"));
    use std::io::IsTerminal;
    let journal = stderr_is_journal();
    // JSON logs carry fields, not one string: the access log then writes its fields as
    // such instead of a JSON text inside the message (no double encoding).
    tandem_http::access_log::set_structured(format == LogFormat::Json);
    // Colours only on a terminal: files and journald get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && !journal)
        .with_writer(std::io::stderr);
    let _ = match (format, journal) {
        (LogFormat::Human, false) => builder.try_init(),
        (LogFormat::Json, false) => builder.json().try_init(),
        (LogFormat::Human, true) => builder
            .event_format(SyslogPrefix(
                tracing_subscriber::fmt::format().without_time(),
            ))
            .try_init(),
        // The priority prefix goes before the object: journald strips it, and the
        // message it stores is the JSON object alone.
        (LogFormat::Json, true) => builder
            .event_format(SyslogPrefix(
                tracing_subscriber::fmt::format().json().without_time(),
            ))
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .try_init(),
    };
}
