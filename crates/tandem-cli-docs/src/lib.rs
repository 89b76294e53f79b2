//! Man pages and shell completions, generated from a binary's clap definition so they never
//! drift from its real options. Each binary answers `BIN generate-docs DIR` before parsing
//! its command line ([`generate_if_asked`]); appliance/install.sh and the Debian package
//! build run it, and install what it writes. Nothing generated is committed. It is not a
//! clap subcommand: clap_complete's bash script offers even hidden subcommands, and this
//! one is for packaging, not for people.
//!
//! `DIR` gets the layout of `/usr/share`, so `DIR=/usr/share` would install in place:
//!
//! - `man/man1/NAME.1`, and `NAME-SUB.1` for each visible subcommand (nested ones too, as
//!   `NAME-SUB-SUBSUB.1`, the way git names its pages);
//! - `bash-completion/completions/NAME` (loaded on demand by bash-completion);
//! - `zsh/vendor-completions/_NAME` (Debian's directory for packaged zsh completions);
//! - `fish/vendor_completions.d/NAME.fish`.

use anyhow::Context;
use clap::Command;
use clap_complete::Shell;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// When the command line is `BIN generate-docs DIR`, writes the docs of `cmd()` under DIR
/// and returns the exit code; otherwise returns None and the binary goes on as usual.
pub fn generate_if_asked(cmd: impl FnOnce() -> Command) -> Option<ExitCode> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let [_, verb, dir] = args.as_slice() else {
        return None;
    };
    if verb != "generate-docs" {
        return None;
    }
    let cmd = cmd();
    let name = cmd.get_name().to_string();
    Some(match write_all(cmd, Path::new(dir)) {
        Ok(files) => {
            println!(
                "wrote {} files under {}",
                files.len(),
                Path::new(dir).display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    })
}

/// Where each shell looks for a completion of `name`, relative to `/usr/share`.
pub fn completion_paths(name: &str) -> [(Shell, PathBuf); 3] {
    [
        (
            Shell::Bash,
            Path::new("bash-completion/completions").join(name),
        ),
        (
            Shell::Zsh,
            Path::new("zsh/vendor-completions").join(format!("_{name}")),
        ),
        (
            Shell::Fish,
            Path::new("fish/vendor_completions.d").join(format!("{name}.fish")),
        ),
    ]
}

/// Writes the man pages and completions of `cmd` under `dir`; returns the files written.
pub fn write_all(cmd: Command, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut cmd = cmd;
    cmd.build();
    let name = cmd.get_name().to_string();
    let mut written = Vec::new();
    let man_dir = dir.join("man/man1");
    fs::create_dir_all(&man_dir).with_context(|| format!("creating {}", man_dir.display()))?;
    write_man_pages(&hide_help(cmd.clone()), &name, &man_dir, &mut written)?;
    for (shell, rel) in completion_paths(&name) {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd, &name, &mut script);
        written.push(write(&dir.join(rel), &script)?);
    }
    Ok(written)
}

/// Hides clap's `help` subcommands (which `--help` covers) from the man pages, so no page
/// lists a `NAME-help(1)` that does not exist.
fn hide_help(mut cmd: Command) -> Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, |sub| {
            if sub.get_name() == "help" {
                sub.hide(true)
            } else {
                hide_help(sub)
            }
        });
    }
    cmd
}

/// The page of `cmd` as `page_name.1`, then one per visible subcommand, depth first.
fn write_man_pages(
    cmd: &Command,
    page_name: &str,
    man_dir: &Path,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    // The page's title is its file's name, so `man tandemctl-backend` shows TANDEMCTL-BACKEND.
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(page_name)
        .render(&mut page)
        .with_context(|| format!("rendering the man page {page_name}.1"))?;
    written.push(write(&man_dir.join(format!("{page_name}.1")), &page)?);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub_page = format!("{page_name}-{}", sub.get_name());
        write_man_pages(sub, &sub_page, man_dir, written)?;
    }
    Ok(())
}

fn write(path: &Path, content: &[u8]) -> anyhow::Result<PathBuf> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    fn sample() -> Command {
        Command::new("sample")
            .about("A sample tool")
            .subcommand(
                Command::new("pool").about("Pools").subcommand(
                    Command::new("drain")
                        .about("Drain one")
                        .arg(Arg::new("name")),
                ),
            )
            .subcommand(Command::new("secret").hide(true))
    }

    #[test]
    fn every_visible_subcommand_gets_a_page_and_each_shell_a_script() {
        let dir = std::env::temp_dir().join(format!("tandem-cli-docs-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let written = write_all(sample(), &dir).unwrap();
        let rel: Vec<String> = written
            .iter()
            .map(|p| p.strip_prefix(&dir).unwrap().display().to_string())
            .collect();
        assert_eq!(
            rel,
            [
                "man/man1/sample.1",
                "man/man1/sample-pool.1",
                "man/man1/sample-pool-drain.1",
                "bash-completion/completions/sample",
                "zsh/vendor-completions/_sample",
                "fish/vendor_completions.d/sample.fish",
            ]
        );
        let top = fs::read_to_string(dir.join("man/man1/sample.1")).unwrap();
        assert!(top.contains("sample\\-pool(1)"), "{top}");
        assert!(!top.contains("help(1)") && !top.contains("secret"), "{top}");
        let page = fs::read_to_string(dir.join("man/man1/sample-pool-drain.1")).unwrap();
        assert!(page.contains(".TH sample-pool-drain 1"), "{page}");
        assert!(page.contains("Drain one"), "{page}");
        let bash = fs::read_to_string(dir.join("bash-completion/completions/sample")).unwrap();
        assert!(bash.contains("pool"), "{bash}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
