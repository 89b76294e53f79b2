//! The UDP listener: one flow per client address, each with its own upstream socket so
//! that replies can be told apart; replies go back from the listening socket. A flow is
//! forgotten after `idle_timeout` without traffic; the table is bounded.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::stats::{ActiveGuard, ListenerStats};
use tandem_pool::ErrorKind;
use tandem_pool::{BackendLease, SharedPool};

/// Largest UDP payload; anything bigger cannot arrive in one datagram anyway.
const MAX_DATAGRAM: usize = 65_535;

pub(crate) struct UdpSettings {
    pub name: String,
    pub max_flows: usize,
    pub idle_timeout: Duration,
    /// Source-IP hashing keys IPv6 clients by this prefix.
    pub client_ipv6_prefix: u8,
}

struct Flow {
    upstream: Arc<UdpSocket>,
    /// Milliseconds since `origin` of the last datagram either way.
    last_ms: AtomicU64,
    origin: Instant,
}

impl Flow {
    fn touch(&self) {
        self.last_ms
            .store(self.origin.elapsed().as_millis() as u64, Relaxed);
    }
    fn idle_deadline(&self, idle: Duration) -> Instant {
        self.origin + Duration::from_millis(self.last_ms.load(Relaxed)) + idle
    }
}

type FlowTable = Arc<Mutex<HashMap<SocketAddr, Arc<Flow>>>>;

pub(crate) async fn relay_loop(
    socket: UdpSocket,
    live: Arc<arc_swap::ArcSwap<crate::plane::Live<UdpSettings>>>,
    stats: Arc<ListenerStats>,
    stop: CancellationToken,
) {
    let socket = Arc::new(socket);
    let flows: FlowTable = Arc::new(Mutex::new(HashMap::new()));
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => break,
            r = socket.recv_from(&mut buf) => r,
        };
        let (n, client) = match received {
            Ok(pair) => pair,
            Err(e) => {
                // ICMP errors from earlier sends surface here on some kernels; not fatal.
                tracing::debug!(listener = %live.load().settings.name, error = %e, "udp receive error");
                continue;
            }
        };
        let existing = lock(&flows).get(&client).cloned();
        // New flows use the settings and pool as of now (a reload swaps them).
        let current = live.load_full();
        let (settings, pool) = (&current.settings, &current.pool);
        let flow = match existing {
            Some(flow) => flow,
            None => match open_flow(client, &socket, settings, pool, &stats, &flows, &stop).await {
                Some(flow) => flow,
                None => continue,
            },
        };
        flow.touch();
        match flow.upstream.send(&buf[..n]).await {
            Ok(_) => ListenerStats::add(&stats.bytes_in, n as u64),
            Err(e) => {
                ListenerStats::bump(&stats.dropped_datagrams);
                tracing::debug!(listener = %settings.name, client = %client, error = %e, "udp send to backend failed");
            }
        }
    }
    tracing::info!(listener = %live.load().settings.name, "stopped receiving");
}

fn lock(flows: &FlowTable) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Arc<Flow>>> {
    flows.lock().unwrap_or_else(|p| p.into_inner())
}

async fn open_flow(
    client: SocketAddr,
    socket: &Arc<UdpSocket>,
    settings: &Arc<UdpSettings>,
    pool: &Arc<SharedPool>,
    stats: &Arc<ListenerStats>,
    flows: &FlowTable,
    stop: &CancellationToken,
) -> Option<Arc<Flow>> {
    if lock(flows).len() >= settings.max_flows {
        ListenerStats::bump(&stats.over_limit);
        tracing::debug!(listener = %settings.name, client = %client, "flow table full, dropping datagram");
        return None;
    }
    let key = crate::tcp::ip_key(&client, settings.client_ipv6_prefix);
    let Some(lease) = pool.acquire(Some(key.as_slice()), &[]) else {
        ListenerStats::bump(&stats.no_backend);
        tracing::warn!(listener = %settings.name, client = %client, "no backend available for new udp flow");
        return None;
    };
    let upstream = match tandem_pool::udp_upstream(lease.address()) {
        Ok(s) => s,
        Err(e) => {
            ListenerStats::bump(&stats.dropped_datagrams);
            tracing::warn!(listener = %settings.name, error = %e, "cannot open upstream udp socket");
            return None;
        }
    };
    if let Err(e) = upstream.connect(lease.address()).await {
        ListenerStats::bump(&stats.connect_failures);
        lease.metrics().error(ErrorKind::Connect);
        lease.failed(&format!("udp connect to {}: {e}", lease.address()));
        return None;
    }
    let flow = Arc::new(Flow {
        upstream: Arc::new(upstream),
        last_ms: AtomicU64::new(0),
        origin: Instant::now(),
    });
    lock(flows).insert(client, flow.clone());
    let guard = ActiveGuard::new(stats.clone());
    tokio::spawn(reply_loop(
        client,
        flow.clone(),
        lease,
        socket.clone(),
        settings.clone(),
        stats.clone(),
        flows.clone(),
        stop.clone(),
        guard,
    ));
    Some(flow)
}

/// Relays backend replies to the client until the flow idles out or the listener stops.
#[allow(clippy::too_many_arguments)]
async fn reply_loop(
    client: SocketAddr,
    flow: Arc<Flow>,
    lease: BackendLease,
    socket: Arc<UdpSocket>,
    settings: Arc<UdpSettings>,
    stats: Arc<ListenerStats>,
    flows: FlowTable,
    stop: CancellationToken,
    _active: ActiveGuard,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut answered = false;
    loop {
        let deadline = flow.idle_deadline(settings.idle_timeout);
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(deadline) => {
                if Instant::now() >= flow.idle_deadline(settings.idle_timeout) {
                    ListenerStats::bump(&stats.idle_timeouts);
                    break;
                }
            }
            r = flow.upstream.recv(&mut buf) => match r {
                Ok(n) => {
                    flow.touch();
                    if !answered {
                        // The backend answers: clear its passive failure count once per flow.
                        lease.succeeded();
                        answered = true;
                    }
                    match socket.send_to(&buf[..n], client).await {
                        Ok(_) => ListenerStats::add(&stats.bytes_out, n as u64),
                        Err(_) => ListenerStats::bump(&stats.dropped_datagrams),
                    }
                }
                Err(e) => {
                    // ECONNREFUSED: the backend port is closed (ICMP). Count it for ejection.
                    ListenerStats::bump(&stats.dropped_datagrams);
                    lease.metrics().error(ErrorKind::Unreachable);
                    lease.failed(&format!("udp reply from {}: {e}", lease.address()));
                }
            },
        }
    }
    lock(&flows).remove(&client);
    tracing::debug!(listener = %settings.name, client = %client, backend = %lease.backend_id(), "udp flow closed");
}
