//! Listener, HTTP, pool and backend metrics, read from the planes' counters.

use prometheus_client::registry::Unit;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tandem_balance::{AdminState, Health};
use tandem_config::Protocol;
use tandem_http::HttpListenerHandle;
use tandem_proxy::{BackendMetrics, BackendStatus, ListenerHandle, SharedPool};

use super::{labels, Labels, Out};

/// One pool as a scrape sees it.
#[derive(Clone, Debug)]
pub struct PoolSample {
    pub name: String,
    /// Share of enabled backends that are up and not ejected.
    pub healthy_share: f64,
    pub in_panic: bool,
    pub backends: Vec<BackendSample>,
}

#[derive(Clone, Debug)]
pub struct BackendSample {
    pub status: BackendStatus,
    pub metrics: Arc<BackendMetrics>,
}

impl PoolSample {
    pub fn read(pool: &SharedPool) -> PoolSample {
        let mut metrics: HashMap<String, Arc<BackendMetrics>> =
            pool.backend_metrics().into_iter().collect();
        let backends = pool
            .snapshot()
            .into_iter()
            .map(|status| BackendSample {
                // A backend added between the two reads has no counts yet.
                metrics: metrics.remove(&status.id).unwrap_or_default(),
                status,
            })
            .collect();
        PoolSample {
            name: pool.name().to_string(),
            healthy_share: pool.healthy_share(),
            in_panic: pool.in_panic(),
            backends,
        }
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Http => "http",
    }
}

/// `base` with one more label.
fn with(base: &Labels, name: &str, value: &str) -> Labels {
    let mut l = base.clone();
    l.push((name.to_string(), value.to_string()));
    l
}

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn encode_listeners(out: &mut Out, l4: &[ListenerHandle], http: &[HttpListenerHandle]) {
    let accepted = out.counter(
        "listener_connections_accepted",
        "Client connections (UDP: flows) accepted",
    );
    let active = out.gauge(
        "listener_connections_active",
        "Client connections (UDP: flows) open now",
    );
    let refused = out.counter(
        "listener_connections_refused",
        "Clients turned away, by reason: max_connections, no_backend, client_limit",
    );
    let bytes = out.counter(
        "listener_bytes",
        "Bytes relayed by L4 listeners: in = client to backend, out = backend to client",
    );
    let idle = out.counter(
        "listener_idle_timeouts",
        "L4 connections closed (UDP: flows forgotten) for idleness",
    );
    let connect_failures = out.counter(
        "listener_backend_connect_failures",
        "L4 attempts to connect to a backend that failed (each try counts)",
    );
    let dropped = out.counter(
        "listener_dropped_datagrams",
        "UDP datagrams that could not be relayed",
    );
    for l in l4 {
        let s = l.stats.snapshot();
        let base = labels([
            ("listener", l.name.as_str()),
            ("protocol", protocol_name(l.protocol)),
        ]);
        accepted.get_or_create(&base).inc_by(s.accepted);
        active.get_or_create(&base).set(gauge_value(s.active));
        refused
            .get_or_create(&with(&base, "reason", "max_connections"))
            .inc_by(s.over_limit);
        refused
            .get_or_create(&with(&base, "reason", "no_backend"))
            .inc_by(s.no_backend);
        bytes
            .get_or_create(&with(&base, "direction", "in"))
            .inc_by(s.bytes_in);
        bytes
            .get_or_create(&with(&base, "direction", "out"))
            .inc_by(s.bytes_out);
        idle.get_or_create(&base).inc_by(s.idle_timeouts);
        connect_failures
            .get_or_create(&base)
            .inc_by(s.connect_failures);
        if l.protocol == Protocol::Udp {
            dropped.get_or_create(&base).inc_by(s.dropped_datagrams);
        }
    }

    let requests = out.counter("http_requests", "HTTP requests received");
    let responses = out.counter(
        "http_responses",
        "HTTP responses sent to clients, by status class",
    );
    let retries = out.counter("http_retries", "Requests sent again to another backend");
    let rate_limited = out.counter("http_rate_limited", "Requests refused with 429");
    let denied = out.counter("http_denied", "Requests refused by an access rule (403)");
    let tls_failures = out.counter(
        "http_tls_handshake_failures",
        "Client TLS handshakes that failed or timed out",
    );
    let bad_requests = out.counter(
        "http_bad_requests",
        "Requests refused with 400 for the client's fault, by reason",
    );
    let send_timeouts = out.counter(
        "http_send_timeouts",
        "Client connections closed because the client read nothing for send_timeout",
    );
    let body_bytes = out.counter(
        "http_body_bytes",
        "HTTP body bytes: in = request bodies read from clients, out = response bodies sent to them (counted when the response ends)",
    );
    let compressed = out.counter(
        "http_compressed_responses",
        "HTTP responses compressed by tandem, by encoding (br, zstd, gzip)",
    );
    let compressed_bytes = out.counter(
        "http_compressed_bytes",
        "Response body bytes through tandem's compression: in = before, out = after",
    );
    let mut durations = Vec::with_capacity(http.len());
    let parked = out.gauge(
        "http_idle_connections",
        "HTTP/1.1 client connections idle between requests now, parked without buffers (part of listener_connections_active)",
    );
    let h2_window_stalls = out.counter(
        "http_h2_window_stalls",
        "HTTP/2 client connections closed because a stream got no flow-control window for send_timeout (also in http_send_timeouts)",
    );
    for l in http {
        let s = &l.stats;
        let base = labels([("listener", l.name.as_str()), ("protocol", "http")]);
        accepted
            .get_or_create(&base)
            .inc_by(s.connections.load(Relaxed));
        active
            .get_or_create(&base)
            .set(gauge_value(s.active_connections.load(Relaxed)));
        parked
            .get_or_create(&labels([("listener", l.name.as_str())]))
            .set(gauge_value(s.idle_connections.load(Relaxed)));
        refused
            .get_or_create(&with(&base, "reason", "client_limit"))
            .inc_by(s.over_client_limit.load(Relaxed));
        refused
            .get_or_create(&with(&base, "reason", "max_connections"))
            .inc_by(s.over_limit.load(Relaxed));
        let listener = labels([("listener", l.name.as_str())]);
        requests
            .get_or_create(&listener)
            .inc_by(s.requests.load(Relaxed));
        let classes = [
            ("1xx", &s.responses_1xx),
            ("2xx", &s.responses_2xx),
            ("3xx", &s.responses_3xx),
            ("4xx", &s.responses_4xx),
            ("5xx", &s.responses_5xx),
        ];
        for (class, n) in classes {
            responses
                .get_or_create(&with(&listener, "class", class))
                .inc_by(n.load(Relaxed));
        }
        retries
            .get_or_create(&listener)
            .inc_by(s.retries.load(Relaxed));
        rate_limited
            .get_or_create(&listener)
            .inc_by(s.rate_limited.load(Relaxed));
        denied
            .get_or_create(&listener)
            .inc_by(s.denied.load(Relaxed));
        bad_requests
            .get_or_create(&with(&listener, "reason", "client_body"))
            .inc_by(s.client_body_errors.load(Relaxed));
        bad_requests
            .get_or_create(&with(&listener, "reason", "host"))
            .inc_by(s.bad_host.load(Relaxed));
        send_timeouts
            .get_or_create(&listener)
            .inc_by(s.send_timeouts.load(Relaxed));
        body_bytes
            .get_or_create(&with(&listener, "direction", "in"))
            .inc_by(s.body_bytes_in.load(Relaxed));
        body_bytes
            .get_or_create(&with(&listener, "direction", "out"))
            .inc_by(s.body_bytes_out.load(Relaxed));
        let c = &s.compression;
        for algo in tandem_http::compress::Algorithm::ALL {
            compressed
                .get_or_create(&with(&listener, "algorithm", algo.name()))
                .inc_by(c.responses(algo));
        }
        compressed_bytes
            .get_or_create(&with(&listener, "stage", "in"))
            .inc_by(c.bytes_in.load(Relaxed));
        compressed_bytes
            .get_or_create(&with(&listener, "stage", "out"))
            .inc_by(c.bytes_out.load(Relaxed));
        durations.push((listener.clone(), s.request_seconds.histogram().clone()));
        h2_window_stalls
            .get_or_create(&listener)
            .inc_by(s.h2_window_stalls.load(Relaxed));
        if l.tls {
            tls_failures
                .get_or_create(&listener)
                .inc_by(s.tls_handshake_failures.load(Relaxed));
        }
    }
    out.histograms(
        "http_request_duration",
        "Client-side time from a request's head received to its response's last body byte sent.",
        Unit::Seconds,
        durations,
    );
}

pub(super) fn encode_pools(out: &mut Out, pools: &[PoolSample]) {
    let healthy = out.float_gauge(
        "pool_healthy_ratio",
        "Share of the pool's enabled backends that are up and not ejected",
    );
    let panic = out.gauge(
        "pool_panic_mode",
        "1 while too few backends are healthy and the pool balances over all of them",
    );
    let up = out.gauge("backend_up", "1 when health checks say the backend is up");
    let ejected = out.gauge(
        "backend_ejected",
        "1 while the backend is passively ejected (failures seen in real traffic)",
    );
    let admin = out.gauge(
        "backend_admin_state",
        "1 for the backend's operator state (enabled, draining, disabled), 0 for the others",
    );
    let weight = out.gauge("backend_weight", "Configured weight");
    let active = out.gauge(
        "backend_active_connections",
        "Connections, UDP flows and HTTP requests open to the backend now",
    );
    let picks = out.counter(
        "backend_picks",
        "Times the balancer chose the backend (a connection, UDP flow or HTTP attempt)",
    );
    let ejections = out.counter("backend_ejections", "Passive ejections of the backend");
    let requests = out.counter(
        "backend_requests",
        "HTTP responses received from the backend, by status class",
    );
    let errors = out.counter(
        "backend_errors",
        "Failed exchanges with the backend, by kind (status_5xx also counts 5xx responses)",
    );
    let mut histograms = Vec::new();
    for p in pools {
        let pool = labels([("pool", p.name.as_str())]);
        healthy.get_or_create(&pool).set(p.healthy_share);
        panic.get_or_create(&pool).set(i64::from(p.in_panic));
        for b in &p.backends {
            let s = &b.status;
            let base = with(&pool, "backend", &s.id);
            up.get_or_create(&base)
                .set(i64::from(s.health == Health::Up));
            ejected.get_or_create(&base).set(i64::from(s.ejected));
            let states = [
                ("enabled", AdminState::Enabled),
                ("draining", AdminState::Draining),
                ("disabled", AdminState::Disabled),
            ];
            for (name, state) in states {
                admin
                    .get_or_create(&with(&base, "state", name))
                    .set(i64::from(s.admin == state));
            }
            weight.get_or_create(&base).set(i64::from(s.weight));
            active.get_or_create(&base).set(i64::from(s.active));
            picks.get_or_create(&base).inc_by(s.total_picks);
            ejections.get_or_create(&base).inc_by(b.metrics.ejections());
            for (class, n) in b.metrics.responses() {
                requests
                    .get_or_create(&with(&base, "class", class))
                    .inc_by(n);
            }
            for (kind, n) in b.metrics.errors() {
                errors
                    .get_or_create(&with(&base, "kind", kind.as_str()))
                    .inc_by(n);
            }
            histograms.push((base, b.metrics.response_seconds().clone()));
        }
    }
    out.histograms(
        "backend_response",
        "Time from sending a request to the backend to its response head.",
        Unit::Seconds,
        histograms,
    );
}

/// Local sticky-table sizes (pools with `sticky = { kind = "source_ip" }` only).
pub(super) fn encode_sticky(out: &mut Out, sticky: &[(String, usize)]) {
    let entries = out.gauge(
        "pool_sticky_entries",
        "Entries of the pool's source-IP sticky table on this node (with a cluster: replicated ones merged in)",
    );
    for (pool, n) in sticky {
        entries
            .get_or_create(&labels([("pool", pool.as_str())]))
            .set(gauge_value(*n as u64));
    }
}

pub(super) fn encode_certificates(
    out: &mut Out,
    certs: &[(String, String, std::time::SystemTime)],
) {
    let expiry = out.float_gauge(
        "tls_certificate_expiry_timestamp_seconds",
        "Unix time the TLS listener certificate (the leaf in the file) expires; alert on it minus time()",
    );
    for (listener, cert, at) in certs {
        let secs = at
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        expiry
            .get_or_create(&labels([
                ("listener", listener.as_str()),
                ("cert", cert.as_str()),
            ]))
            .set(secs);
    }
}

/// ACME orders run on this node (the Raft leader's, or a single node's): failures, and the current failure streak
/// (non-zero: the certificate in force is not being renewed; alert with the expiry gauge).
pub(super) fn encode_acme(
    out: &mut Out,
    acme: &std::collections::BTreeMap<String, crate::acme::CertStatus>,
) {
    let failed = out.counter(
        "acme_orders_failed",
        "ACME orders for the certificate that failed on this node (it orders while it leads Raft, or alone)",
    );
    let failing = out.gauge(
        "acme_order_failures_in_a_row",
        "Consecutive failed ACME orders for the certificate on this node; 0 after a success",
    );
    for (name, status) in acme {
        let l = labels([("certificate", name.as_str())]);
        failed.get_or_create(&l).inc_by(status.failed_orders);
        failing
            .get_or_create(&l)
            .set(gauge_value(u64::from(status.failing)));
    }
}
