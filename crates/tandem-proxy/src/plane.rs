//! The L4 forwarding plane of one node: every TCP and UDP listener of the cluster config,
//! bound and running, and the pools that every plane (L4 and L7) balances over.
//!
//! `apply` moves a running plane to a new config without dropping anything: a listener
//! whose (kind, address) stays keeps its socket and gets its new settings and pool by an
//! atomic swap; pools keep the state of surviving backends; removed listeners stop
//! accepting while their connections finish.

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tandem_config::{ClusterConfig, Listener as ListenerConfig, Protocol};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::stats::ListenerStats;
use crate::tcp::{self, TcpSettings};
use crate::udp::{self, UdpSettings};
use tandem_pool::Clock;
use tandem_pool::SharedPool;
use tandem_pool::StartError;

/// What a running listener reads for each new connection or flow.
pub struct Live<S> {
    pub settings: Arc<S>,
    pub pool: Arc<SharedPool>,
}

/// A running listener, as status output and tests see it.
#[derive(Clone)]
pub struct ListenerHandle {
    pub name: String,
    pub protocol: Protocol,
    pub local_addr: SocketAddr,
    pub pool: String,
    pub stats: Arc<ListenerStats>,
}

enum LiveState {
    Tcp(Arc<ArcSwap<Live<TcpSettings>>>),
    Udp(Arc<ArcSwap<Live<UdpSettings>>>),
}

struct Running {
    handle: ListenerHandle,
    live: LiveState,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// What `apply` changed, for the log and the admin API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplySummary {
    pub listeners_added: Vec<String>,
    pub listeners_removed: Vec<String>,
    pub listeners_updated: Vec<String>,
    pub pools_added: Vec<String>,
    pub pools_removed: Vec<String>,
    pub pools_updated: Vec<String>,
}

pub struct Plane {
    clock: Clock,
    pools: Mutex<HashMap<String, Arc<SharedPool>>>,
    listeners: Mutex<Vec<Running>>,
    /// One task per TCP connection; a graceful stop waits on it.
    connections: TaskTracker,
    /// Stops every loop at shutdown (each listener also has its own child token).
    stop: CancellationToken,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The kind of socket a listener needs: two listeners of one kind cannot share an address.
fn socket_key(l: &ListenerConfig) -> (bool, SocketAddr) {
    (l.protocol == Protocol::Udp, l.bind)
}

impl Plane {
    /// Binds every TCP and UDP listener (all or nothing: a bind failure names the listener
    /// and address) and starts serving. HTTP listeners are the L7 plane's (tandem-http),
    /// over these same pools. Must be called inside a tokio runtime.
    pub fn start(config: &ClusterConfig) -> Result<Plane, StartError> {
        let plane = Plane {
            clock: Clock::new(),
            pools: Mutex::new(HashMap::new()),
            listeners: Mutex::new(Vec::new()),
            connections: TaskTracker::new(),
            stop: CancellationToken::new(),
        };
        plane.apply(config)?;
        Ok(plane)
    }

    /// Moves the plane to `config`. Pools first (so listeners find them), then listeners:
    /// removed ones stop accepting, new ones are bound, kept ones get new settings.
    pub fn apply(&self, config: &ClusterConfig) -> Result<ApplySummary, StartError> {
        let mut summary = ApplySummary::default();
        {
            let mut pools = lock(&self.pools);
            for p in &config.pools {
                match pools.get(&p.name) {
                    Some(existing) => {
                        if existing.reconfigure(p) {
                            summary.pools_updated.push(p.name.clone());
                        }
                    }
                    None => {
                        pools.insert(p.name.clone(), SharedPool::new(p, self.clock));
                        summary.pools_added.push(p.name.clone());
                    }
                }
            }
            pools.retain(|name, _| {
                let keep = config.pools.iter().any(|p| &p.name == name);
                if !keep {
                    summary.pools_removed.push(name.clone());
                }
                keep
            });
        }
        let wanted: Vec<&ListenerConfig> = config
            .listeners
            .iter()
            .filter(|l| l.protocol != Protocol::Http)
            .collect();
        let mut running = lock(&self.listeners);
        // Stop the listeners whose socket is no longer wanted.
        running.retain(|r| {
            let key = (r.handle.protocol == Protocol::Udp, r.handle.local_addr);
            let keep = wanted.iter().any(|l| socket_key(l) == key);
            if !keep {
                r.stop.cancel();
                tracing::info!(listener = %r.handle.name, "listener removed: stops accepting, its connections finish");
                summary.listeners_removed.push(r.handle.name.clone());
            }
            keep
        });
        for l in wanted {
            let pool = self.pool(&l.pool).ok_or_else(|| StartError::MissingPool {
                listener: l.name.clone(),
                pool: l.pool.clone(),
            })?;
            let existing = running.iter_mut().find(|r| {
                (r.handle.protocol == Protocol::Udp, r.handle.local_addr) == socket_key(l)
            });
            match existing {
                Some(r) => {
                    match &r.live {
                        LiveState::Tcp(live) => live.store(Arc::new(Live {
                            settings: Arc::new(TcpSettings::from_config(l)),
                            pool,
                        })),
                        LiveState::Udp(live) => live.store(Arc::new(Live {
                            settings: Arc::new(udp_settings(l)),
                            pool,
                        })),
                    }
                    if r.handle.name != l.name
                        || r.handle.pool != l.pool
                        || r.handle.protocol != l.protocol
                    {
                        r.handle.name = l.name.clone();
                        r.handle.pool = l.pool.clone();
                        r.handle.protocol = l.protocol;
                    }
                    summary.listeners_updated.push(l.name.clone());
                }
                None => {
                    running.push(self.start_listener(l, pool)?);
                    summary.listeners_added.push(l.name.clone());
                }
            }
        }
        Ok(summary)
    }

    fn start_listener(
        &self,
        l: &ListenerConfig,
        pool: Arc<SharedPool>,
    ) -> Result<Running, StartError> {
        let stats = Arc::new(ListenerStats::default());
        let stop = self.stop.child_token();
        let (local_addr, live, task) = match l.protocol {
            Protocol::Udp => {
                let socket = tandem_pool::bind_udp(&l.name, l.bind, l.ipv6_only())?;
                let local = socket.local_addr().unwrap_or(l.bind);
                let live = Arc::new(ArcSwap::from_pointee(Live {
                    settings: Arc::new(udp_settings(l)),
                    pool,
                }));
                let task = tokio::spawn(udp::relay_loop(
                    socket,
                    live.clone(),
                    stats.clone(),
                    stop.clone(),
                ));
                (local, LiveState::Udp(live), task)
            }
            _ => {
                let socket = tandem_pool::bind_tcp(&l.name, l.bind, l.backlog(), l.ipv6_only())?;
                let local = socket.local_addr().unwrap_or(l.bind);
                let live = Arc::new(ArcSwap::from_pointee(Live {
                    settings: Arc::new(TcpSettings::from_config(l)),
                    pool,
                }));
                let task = tokio::spawn(tcp::accept_loop(
                    socket,
                    live.clone(),
                    stats.clone(),
                    stop.clone(),
                    self.connections.clone(),
                ));
                (local, LiveState::Tcp(live), task)
            }
        };
        tracing::info!(listener = %l.name, protocol = ?l.protocol, address = %local_addr, pool = %l.pool, "listening");
        Ok(Running {
            handle: ListenerHandle {
                name: l.name.clone(),
                protocol: l.protocol,
                local_addr,
                pool: l.pool.clone(),
                stats,
            },
            live,
            stop,
            task,
        })
    }

    /// The clock the pools are fed from (the HTTP plane shares it).
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Every pool, by name (cheap clones of shared handles).
    pub fn pools(&self) -> HashMap<String, Arc<SharedPool>> {
        lock(&self.pools).clone()
    }

    pub fn pool(&self, name: &str) -> Option<Arc<SharedPool>> {
        lock(&self.pools).get(name).cloned()
    }

    pub fn listeners(&self) -> Vec<ListenerHandle> {
        lock(&self.listeners)
            .iter()
            .map(|r| r.handle.clone())
            .collect()
    }

    pub fn listener(&self, name: &str) -> Option<ListenerHandle> {
        lock(&self.listeners)
            .iter()
            .find(|r| r.handle.name == name)
            .map(|r| r.handle.clone())
    }

    /// Number of TCP connections still being served.
    pub fn open_connections(&self) -> usize {
        self.connections.len()
    }

    /// Graceful stop: close the listening sockets at once, let open TCP connections finish
    /// for up to `drain`, then return how many were still open (they end with the process).
    pub async fn shutdown(&self, drain: Duration) -> usize {
        self.stop.cancel();
        let tasks: Vec<_> = lock(&self.listeners).drain(..).map(|r| r.task).collect();
        for task in tasks {
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

fn udp_settings(l: &ListenerConfig) -> UdpSettings {
    UdpSettings {
        name: l.name.clone(),
        max_flows: l.max_connections as usize,
        idle_timeout: l.idle_timeout().get(),
        client_ipv6_prefix: l.client_ipv6_prefix(),
    }
}
