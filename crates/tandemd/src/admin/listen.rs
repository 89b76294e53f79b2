//! The admin API's sockets. The Unix socket is the default because file permissions are
//! its access control (root and the socket's group); TCP is opt-in and always needs a
//! bearer token (config validation refuses `admin_tcp` without `admin_token_file`).

use anyhow::{bail, Context};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Binds the Unix socket at `path`: creates the parent directory if missing, replaces a
/// stale socket file left by a crash, but never takes over a socket another process
/// (another tandemd) still answers on. The socket is made 0660.
pub fn bind_unix(path: &Path) -> anyhow::Result<(tokio::net::UnixListener, SocketFile)> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| {
            format!(
                "creating {} for the admin socket (node.admin_socket; \"\" disables it)",
                parent.display()
            )
        })?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => bail!(
            "{} exists and is not a socket; remove it or set node.admin_socket to another path",
            path.display()
        ),
        Ok(_) => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                bail!(
                    "another process (another tandemd?) answers on the admin socket {}; stop it \
                     or set node.admin_socket to another path",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("removing the stale admin socket {}", path.display()))?;
            tracing::info!(path = %path.display(), "removed a stale admin socket");
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("inspecting the admin socket {}", path.display()))
        }
    }
    let listener = std::os::unix::net::UnixListener::bind(path)
        .with_context(|| format!("binding the admin socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod 0660 {}", path.display()))?;
    listener.set_nonblocking(true)?;
    let inode = std::fs::metadata(path)?.ino();
    let listener = tokio::net::UnixListener::from_std(listener)?;
    Ok((
        listener,
        SocketFile {
            path: path.to_path_buf(),
            inode,
        },
    ))
}

/// Removes the socket file when the server goes away, but only if it is still ours: a
/// newer tandemd may have replaced it meanwhile.
pub struct SocketFile {
    path: PathBuf,
    inode: u64,
}

impl SocketFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Reads the bearer token. Read again for every TCP request, so rotating the token is
/// writing the file (no restart, no reload).
pub fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the admin token file {}", path.display()))?;
    let token = text.trim().to_string();
    if token.is_empty() {
        bail!(
            "the admin token file {} is empty; put a long random string in it",
            path.display()
        );
    }
    Ok(token)
}

/// Compares in time independent of where the first difference is, so response timing
/// does not leak the token byte by byte.
pub fn same_token(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    let mut diff = (a.len() != b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(same_token("s3cret", "s3cret"));
        assert!(!same_token("s3cret", "s3cre"));
        assert!(!same_token("s3cre", "s3cret"));
        assert!(!same_token("", "s3cret"));
        assert!(!same_token("s3cres", "s3cret"));
    }
}
