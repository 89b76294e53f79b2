//! tandemd's logs as the tools that read them expect: under journald (stderr is the
//! stream JOURNAL_STREAM names) no timestamp and a `<N>` syslog priority per line, so
//! `journalctl -p warning` works; `--log-format json` with `access_log_format = "json"`
//! gives the access fields as real JSON fields (no JSON text inside the message); the
//! `combined` access format is the NCSA line with bytes, referer and user agent.

use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tandem_tests::http_kit::*;
use tandem_tests::*;

/// A running tandemd whose stderr lines are collected.
struct Logged {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    _dir: tandem_tests::TempDir,
}

impl Logged {
    /// `tandemd [args] run --config <toml>`; `journal` sets JOURNAL_STREAM to the
    /// device:inode of the pipe given as its stderr, as systemd does.
    fn start(toml: &str, args: &[&str], journal: bool) -> Logged {
        let dir = tandem_tests::TempDir::new();
        let file = dir.write("tandem.toml", toml);
        let (read, write) = nix::unistd::pipe().expect("a pipe");
        let mut command = Command::new(tandemd_bin());
        command
            .args(args)
            .args(["run", "--config"])
            .arg(&file)
            .env("RUST_LOG", "info")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if journal {
            let st = nix::sys::stat::fstat(write.as_fd()).expect("fstat of the pipe");
            command.env("JOURNAL_STREAM", format!("{}:{}", st.st_dev, st.st_ino));
        }
        command.stderr(Stdio::from(write));
        let child = Child(command.spawn().expect("starting tandemd"));
        drop(command);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(std::fs::File::from(read)).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Logged {
            child,
            lines,
            _dir: dir,
        }
    }

    fn all(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    async fn line_with(&self, needle: &str) -> String {
        let found = eventually(Duration::from_secs(10), || {
            self.all().iter().any(|l| l.contains(needle))
        })
        .await;
        assert!(found, "no log line with {needle:?}: {:#?}", self.all());
        self.all().into_iter().find(|l| l.contains(needle)).unwrap()
    }

    async fn stop(mut self) {
        self.child.signal(nix::sys::signal::Signal::SIGTERM);
        let status = self.child.wait_for_exit(Duration::from_secs(10)).await;
        assert!(status.is_some_and(|s| s.success()), "{status:?}");
    }
}

fn config(port: u16, format: &str, app: &HttpBackend, dead: std::net::SocketAddr) -> String {
    let web = Listener::http("web", port).pool("app").tables(&format!(
        "[listener.http]\naccess_log_format = \"{format}\""
    ));
    // A pool whose only backend is dead: its health check logs a warning.
    let gone = Pool::new("gone")
        .raw("[pool.health_check]\nkind = \"tcp\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1")
        .backend("dead", dead);
    Config::test_node()
        .listener(web)
        .listener(Listener::tcp("gone", free_port()).pool("gone"))
        .pool(Pool::of("app", &[app]).algorithm("round_robin"))
        .pool(gone)
        .to_toml()
}

async fn get(port: u16, path: &str) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--max-time", "5"])
        .args(["-A", "probe/1.0 \"quoted\"", "-e", "http://ref.example/"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .await
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn under_journald_lines_carry_a_priority_and_no_timestamp() {
    let app = HttpBackend::start("app").await;
    let port = free_port();
    let node = Logged::start(
        &config(port, "text", &app, ([127, 0, 0, 1], free_port()).into()),
        &[],
        true,
    );
    assert!(wait_listening(([127, 0, 0, 1], port).into(), Duration::from_secs(10)).await);
    get(port, "/j").await;
    let access = node.line_with("path=\"/j\"").await;
    assert!(access.starts_with("<6>"), "info is <6>: {access}");
    let warning = node.line_with("backend=dead").await;
    assert!(warning.starts_with("<4>"), "a warning is <4>: {warning}");
    for line in node.all() {
        let prio = line.get(..3).unwrap_or_default();
        assert!(["<3>", "<4>", "<6>", "<7>"].contains(&prio), "{line}");
        // No timestamp of our own (the journal stamps lines): the level follows at once.
        assert!(
            ["INFO", "WARN", "ERROR", "DEBUG"]
                .iter()
                .any(|l| line[3..].trim_start().starts_with(l)),
            "{line}"
        );
    }
    node.stop().await;

    // The same binary on a plain pipe (JOURNAL_STREAM absent): timestamps, no prefix.
    let node = Logged::start(
        &config(port, "text", &app, ([127, 0, 0, 1], free_port()).into()),
        &[],
        false,
    );
    let line = node.line_with("listening").await;
    assert!(line.starts_with("20"), "an RFC 3339 time first: {line}");
    node.stop().await;
}

#[tokio::test]
async fn json_logs_carry_the_access_fields_as_json() {
    let app = HttpBackend::start("app").await;
    let port = free_port();
    let node = Logged::start(
        &config(port, "json", &app, ([127, 0, 0, 1], free_port()).into()),
        &["--log-format", "json"],
        false,
    );
    assert!(wait_listening(([127, 0, 0, 1], port).into(), Duration::from_secs(10)).await);
    get(port, "/structured").await;
    let line = node.line_with("/structured").await;
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let f = &v["fields"];
    assert_eq!(v["target"], "access", "{v}");
    assert_eq!(f["status"], 200, "a number, not text in a string: {v}");
    assert_eq!(f["path"], "/structured", "{v}");
    assert_eq!(f["method"], "GET", "{v}");
    assert_eq!(f["user_agent"], "probe/1.0 \"quoted\"", "{v}");
    assert_eq!(f["referer"], "http://ref.example/", "{v}");
    assert!(f["bytes_out"].as_u64().is_some_and(|b| b > 0), "{v}");
    assert!(f["upstream_ms"].is_number(), "{v}");
    assert!(
        f.get("message")
            .is_none_or(|m| !m.as_str().unwrap_or("").contains('{')),
        "double-encoded: {v}"
    );
    node.stop().await;
}

#[tokio::test]
async fn combined_access_log_is_the_ncsa_line() {
    let app = HttpBackend::start("app").await;
    let port = free_port();
    let node = Logged::start(
        &config(port, "combined", &app, ([127, 0, 0, 1], free_port()).into()),
        &[],
        false,
    );
    assert!(wait_listening(([127, 0, 0, 1], port).into(), Duration::from_secs(10)).await);
    get(port, "/c?x=1").await;
    let line = node.line_with("GET /c?x=1").await;
    let ncsa = &line[line
        .find("127.0.0.1 - - [")
        .unwrap_or_else(|| panic!("{line}"))..];
    let re = regex::Regex::new(
        r#"^127\.0\.0\.1 - - \[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "GET /c\?x=1 HTTP/1\.1" 200 \d+ "http://ref\.example/" "probe/1\.0 \\x22quoted\\x22"$"#,
    )
    .unwrap();
    assert!(re.is_match(ncsa), "{ncsa}");
    node.stop().await;
}
