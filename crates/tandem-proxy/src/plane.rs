//! The forwarding plane of one node: every listener of the cluster config, bound and
//! running, and the pools they balance over.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tandem_config::{ClusterConfig, Protocol};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bind::{self, StartError};
use crate::clock::Clock;
use crate::pool::SharedPool;
use crate::stats::ListenerStats;
use crate::tcp::{self, TcpSettings};
use crate::udp::{self, UdpSettings};

/// A running listener, as status output and tests see it.
#[derive(Clone)]
pub struct ListenerHandle {
    pub name: String,
    pub protocol: Protocol,
    pub local_addr: SocketAddr,
    pub pool: String,
    pub stats: Arc<ListenerStats>,
}

pub struct Plane {
    clock: Clock,
    pools: HashMap<String, Arc<SharedPool>>,
    listeners: Vec<ListenerHandle>,
    /// Stops the accept and receive loops (and UDP flows).
    stop: CancellationToken,
    /// One task per TCP connection; a graceful stop waits on it.
    connections: TaskTracker,
    loops: Vec<tokio::task::JoinHandle<()>>,
}

impl Plane {
    /// Binds every listener (all or nothing: a bind failure names the listener and address)
    /// and starts serving. Must be called inside a tokio runtime.
    pub fn start(config: &ClusterConfig) -> Result<Plane, StartError> {
        let clock = Clock::new();
        let pools: HashMap<String, Arc<SharedPool>> = config
            .pools
            .iter()
            .map(|p| (p.name.clone(), SharedPool::new(p, clock)))
            .collect();

        // Bind everything before serving anything, so a half-started node never runs.
        enum Bound {
            Tcp(tokio::net::TcpListener),
            Udp(tokio::net::UdpSocket),
        }
        let mut bound = Vec::new();
        // HTTP listeners belong to the L7 plane (tandem-http), over these same pools.
        for l in config
            .listeners
            .iter()
            .filter(|l| l.protocol != Protocol::Http)
        {
            let pool = pools
                .get(&l.pool)
                .cloned()
                .ok_or_else(|| StartError::MissingPool {
                    listener: l.name.clone(),
                    pool: l.pool.clone(),
                })?;
            let socket = match l.protocol {
                Protocol::Udp => Bound::Udp(bind::udp_socket(&l.name, l.bind)?),
                _ => Bound::Tcp(bind::tcp_listener(&l.name, l.bind, l.backlog)?),
            };
            bound.push((l, pool, socket));
        }

        let stop = CancellationToken::new();
        let connections = TaskTracker::new();
        let mut listeners = Vec::new();
        let mut loops = Vec::new();
        for (l, pool, socket) in bound {
            let stats = Arc::new(ListenerStats::default());
            let local_addr = match &socket {
                Bound::Tcp(s) => s.local_addr(),
                Bound::Udp(s) => s.local_addr(),
            }
            .unwrap_or(l.bind);
            let task = match socket {
                Bound::Tcp(listener) => tokio::spawn(tcp::accept_loop(
                    listener,
                    Arc::new(TcpSettings::from_config(l)),
                    pool,
                    stats.clone(),
                    stop.clone(),
                    connections.clone(),
                )),
                Bound::Udp(socket) => tokio::spawn(udp::relay_loop(
                    socket,
                    Arc::new(UdpSettings {
                        name: l.name.clone(),
                        max_flows: l.max_connections as usize,
                        idle_timeout: l.idle_timeout().get(),
                    }),
                    pool,
                    stats.clone(),
                    stop.clone(),
                )),
            };
            tracing::info!(listener = %l.name, protocol = ?l.protocol, address = %local_addr,
                pool = %l.pool, "listening");
            loops.push(task);
            listeners.push(ListenerHandle {
                name: l.name.clone(),
                protocol: l.protocol,
                local_addr,
                pool: l.pool.clone(),
                stats,
            });
        }
        Ok(Plane {
            clock,
            pools,
            listeners,
            stop,
            connections,
            loops,
        })
    }

    /// The clock the pools are fed from (the HTTP plane shares it).
    pub fn clock(&self) -> Clock {
        self.clock
    }

    pub fn pools(&self) -> &HashMap<String, Arc<SharedPool>> {
        &self.pools
    }

    pub fn pool(&self, name: &str) -> Option<&Arc<SharedPool>> {
        self.pools.get(name)
    }

    pub fn listeners(&self) -> &[ListenerHandle] {
        &self.listeners
    }

    pub fn listener(&self, name: &str) -> Option<&ListenerHandle> {
        self.listeners.iter().find(|l| l.name == name)
    }

    /// Number of TCP connections still being served.
    pub fn open_connections(&self) -> usize {
        self.connections.len()
    }

    /// Graceful stop: close the listening sockets at once, let open TCP connections finish
    /// for up to `drain`, then return how many were still open (they end with the process).
    pub async fn shutdown(self, drain: Duration) -> usize {
        self.stop.cancel();
        for task in self.loops {
            let _ = task.await; // the listening socket is closed when its loop returns
        }
        self.connections.close();
        let open = self.connections.len();
        if open > 0 {
            tracing::info!(
                connections = open,
                drain_ms = drain.as_millis() as u64,
                "waiting for open connections to finish"
            );
        }
        if tokio::time::timeout(drain, self.connections.wait())
            .await
            .is_err()
        {
            let left = self.connections.len();
            tracing::warn!(
                connections = left,
                "drain timeout reached, closing the rest"
            );
            return left;
        }
        0
    }
}
