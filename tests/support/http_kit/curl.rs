//! curl run as a child process with a deadline: raw output ([`curl_output`]) or the parsed
//! last response ([`curl`]).

use super::{parse_http_response, Reply};
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
pub async fn curl_output(args: &[&str]) -> CurlOutput {
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

/// Runs curl with `-i` and `args` (as [`curl_output`]) and parses the last response it
/// printed. Panics when curl itself fails (connection refused, timeout).
pub async fn curl(args: &[&str]) -> Reply {
    let with_head: Vec<&str> = std::iter::once("-i").chain(args.iter().copied()).collect();
    let out = curl_output(&with_head).await;
    assert_eq!(out.code, 0, "curl {args:?} failed: {}", out.stderr);
    parse_http_response(out.stdout.as_bytes())
        .unwrap_or_else(|| panic!("curl {args:?}: unparsable output {:?}", out.stdout))
}
