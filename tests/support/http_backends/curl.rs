//! curl run as a child process with a deadline, and the config helpers the L7 tests share.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// What a curl run gave.
#[derive(Debug)]
pub struct CurlOutput {
    /// curl's exit code (-1 if it was killed).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// Runs curl with `args`, ignoring ~/.curlrc and proxy variables, bounded by `--max-time 10`
/// and a 15 s deadline on the process.
pub async fn curl(args: &[&str]) -> CurlOutput {
    let started = Instant::now();
    let child = tokio::process::Command::new("curl")
        .arg("-q")
        .args([
            "--silent",
            "--show-error",
            "--noproxy",
            "*",
            "--max-time",
            "10",
        ])
        .args(args)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("curl is installed (.ci/run --deps-only)");
    let out = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .expect("curl finished within 15 s")
        .expect("curl ran");
    CurlOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// A path as TOML literal string text (single quotes: no escapes needed for temp paths).
pub fn toml_path(p: &Path) -> String {
    format!("'{}'", p.display())
}

/// Config text: one HTTP listener "front" on 127.0.0.1:`port` in front of pool "p".
/// `listener_tables` comes right after the listener's keys (e.g. `[listener.tls]`), and
/// `pool_extra` after the pool's name (keys first, then tables such as `[pool.http]`).
pub fn http_config(
    port: u16,
    listener_tables: &str,
    pool_extra: &str,
    backends: &[(&str, SocketAddr)],
) -> String {
    let mut t = format!(
        "[node]\nid = \"l7\"\ndrain_timeout = \"1s\"\n\n[[listener]]\nname = \"front\"\nprotocol = \"http\"\nbind = \"127.0.0.1:{port}\"\npool = \"p\"\n{listener_tables}\n\n[[pool]]\nname = \"p\"\n{pool_extra}\n"
    );
    for (id, addr) in backends {
        t.push_str(&format!(
            "\n[[pool.backend]]\nid = \"{id}\"\naddress = \"{addr}\"\n"
        ));
    }
    t
}
