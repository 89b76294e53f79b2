//! The admin API: HTTP/1.1 and JSON on a Unix socket (and, opt-in, on TCP with a bearer
//! token), for `tandemctl`, scripts and Prometheus. Reads are views of the running planes;
//! writes go through [`Node`]'s change methods, so they validate with check-config's
//! messages and apply without dropping connections, like a reload.
//!
//! Layout: `listen` binds the sockets, `conn` accepts and authenticates, `router` maps
//! paths, `views` and `writes` answer, `error` is the one JSON error shape.
//! The endpoints are listed in docs/operations.md.

mod cluster;
mod conn;
mod error;
mod listen;
mod rejections;
mod router;
pub(crate) mod views;
mod writes;

pub(crate) use conn::serve_http1;
pub(crate) use listen::same_token;
pub use rejections::AdminRejections;

use std::sync::Arc;
use std::time::Duration;
use tandem_config::NodeConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Node;

/// The admin sockets, bound but not serving yet: binding comes before the node starts, so
/// a taken socket stops start-up before any VIP or listener is touched.
pub struct AdminListeners {
    unix: Option<(tokio::net::UnixListener, listen::SocketFile)>,
    tcp: Option<(tokio::net::TcpListener, std::path::PathBuf)>,
    /// The read-only status listener (`[node.status]`), bound and served alongside; its
    /// own router has no write endpoint (crate::observe).
    status: Option<crate::observe::StatusSocket>,
}

/// A serving admin API; [`AdminServer::stop`] ends it.
pub struct AdminServer {
    stop: CancellationToken,
    tasks: TaskTracker,
    /// Removes the socket file when dropped.
    _socket: Option<listen::SocketFile>,
}

/// Binds what `node` asks for: `admin_socket` (unless "") and `admin_tcp` (with its token
/// file, which must be readable and not empty). Must be called inside a tokio runtime.
pub async fn bind(node: &NodeConfig) -> anyhow::Result<AdminListeners> {
    let unix = if node.admin_socket.as_os_str().is_empty() {
        None
    } else {
        Some(listen::bind_unix(&node.admin_socket)?)
    };
    let tcp = match (node.admin_tcp, &node.admin_token_file) {
        (Some(addr), Some(token_file)) => {
            listen::read_token(token_file)?;
            let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
                anyhow::anyhow!("binding the admin API on {addr} (node.admin_tcp): {e}")
            })?;
            Some((listener, token_file.clone()))
        }
        (Some(_), None) => anyhow::bail!("node.admin_tcp needs node.admin_token_file"),
        (None, _) => None,
    };
    let status = match &node.status {
        Some(config) => Some(crate::observe::bind(config).await?),
        None => None,
    };
    Ok(AdminListeners { unix, tcp, status })
}

impl AdminListeners {
    /// Where the API listens, for the start-up log and the demo banner.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some((_, file)) = &self.unix {
            out.push(file.path().display().to_string());
        }
        if let Some((l, _)) = &self.tcp {
            if let Ok(addr) = l.local_addr() {
                out.push(format!("http://{addr} (bearer token)"));
            }
        }
        if let Some(addr) = self.status.as_ref().and_then(|s| s.local_addr()) {
            out.push(format!("http://{addr}/ (status page, read-only)"));
        }
        out
    }

    /// Starts answering requests about `node`.
    pub fn serve(self, node: Arc<Node>) -> AdminServer {
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let mut socket = None;
        if let Some((listener, file)) = self.unix {
            tracing::info!(path = %file.path().display(), "admin API listening");
            socket = Some(file);
            tasks.spawn(conn::accept_unix(
                listener,
                node.clone(),
                stop.clone(),
                tasks.clone(),
            ));
        }
        if let Some(status) = self.status {
            status.serve(node.clone(), stop.clone(), &tasks);
        }
        if let Some((listener, token_file)) = self.tcp {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(address = %addr, "admin API listening on TCP (bearer token)");
            }
            tasks.spawn(conn::accept_tcp(
                listener,
                token_file,
                node,
                stop.clone(),
                tasks.clone(),
            ));
        }
        AdminServer {
            stop,
            tasks,
            _socket: socket,
        }
    }
}

impl AdminServer {
    /// Stops accepting, lets requests in progress finish (bounded), removes the socket.
    pub async fn stop(self) {
        self.stop.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.tasks.wait()).await;
    }
}
