//! Prometheus exposition of a node's state (docs/metrics.md lists every metric).
//!
//! The planes keep their own counters (relaxed atomics in `ListenerStats`, `HttpStats`,
//! `VrrpStats`, per-backend `BackendMetrics`, the balancer's view of each backend); nothing
//! here counts traffic. A scrape [`Snapshot::gather`]s them, then encodes a **Registry built
//! for that scrape** with prometheus-client's text encoder (no hand-written format).
//!
//! Why a registry per scrape rather than a long-lived one or a custom collector for
//! everything: listeners, pools and backends come and go with every reload, and a fresh
//! registry shows exactly what runs now, with no stale series to prune. Reading VRRP
//! status is async (a Collector's `encode` is not), and a scrape is rare (seconds apart)
//! and small (one registry of a few hundred series). The live response-time histograms
//! cannot be copied into a `Family`, so a small [`Collector`] encodes them as they are.
//! The cluster metrics come from the member's status (openraft's metrics, the applied
//! state, the lease keeper), read in the same way: no task runs for them between scrapes.

mod cluster;
mod process;
mod traffic;
mod vrrp;

pub use cluster::ClusterSample;
pub use process::ProcessSample;
/// What a [`ClusterSample`] is made of (tests build samples from them).
pub use tandem_cluster::lease_keeper::GroupView;
pub use tandem_cluster::node::{ClusterStatus, LeaseStatus, MemberStatus, RpcCalls};
pub use traffic::{BackendSample, PoolSample};
pub use vrrp::{VrrpSample, KNOWN_DROP_REASONS};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use crate::Node;

/// The content type of [`render`]'s output (OpenMetrics text 1.0.0).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The text exposition of every metric of `node`.
pub async fn render(node: &Node) -> String {
    Snapshot::gather(node).await.encode()
}

/// Everything one scrape reads, gathered from a running node.
pub struct Snapshot {
    pub node_id: String,
    pub config_version: u64,
    /// When the node started (Unix time) and for how long it has run.
    pub started: SystemTime,
    pub uptime: Duration,
    pub process: ProcessSample,
    pub l4_listeners: Vec<tandem_proxy::ListenerHandle>,
    pub http_listeners: Vec<tandem_http::HttpListenerHandle>,
    /// Sorted by name.
    pub pools: Vec<PoolSample>,
    /// Local sticky-table sizes of the pools with source-IP stickiness, by pool name.
    pub sticky: Vec<(String, usize)>,
    /// Empty when VRRP is not configured.
    pub vrrp: Vec<VrrpSample>,
    /// Only with `[node.cluster]`.
    pub cluster: Option<ClusterSample>,
    /// (listener, certificate file, its leaf's expiry) of every TLS listener's
    /// certificates, read from the files at scrape time; unreadable ones are left out.
    pub certificates: Vec<(String, String, SystemTime)>,
    /// ACME orders on this node, by certificate name.
    pub acme: std::collections::BTreeMap<String, crate::acme::CertStatus>,
    /// Admin requests refused for what the client sent, by reason.
    pub admin_rejected: Vec<(&'static str, u64)>,
}

impl Snapshot {
    pub async fn gather(node: &Node) -> Snapshot {
        let config = node.config();
        let uptime = node.uptime();
        let mut pools: Vec<PoolSample> = node
            .plane()
            .pools()
            .values()
            .map(|p| PoolSample::read(p))
            .collect();
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        Snapshot {
            node_id: config.node.id.clone(),
            config_version: config.cluster.version,
            started: SystemTime::now()
                .checked_sub(uptime)
                .unwrap_or(SystemTime::UNIX_EPOCH),
            uptime,
            process: ProcessSample::read(),
            l4_listeners: node.plane().listeners(),
            http_listeners: node.http().listeners(),
            pools,
            sticky: node.http().sticky_sizes(),
            vrrp: VrrpSample::gather(node).await,
            cluster: ClusterSample::gather(node).await,
            certificates: certificates(&config, node),
            acme: node.acme().snapshot(),
            admin_rejected: node.admin_rejections().counts(),
        }
    }

    /// The OpenMetrics text of this snapshot.
    pub fn encode(&self) -> String {
        let mut out = Out {
            registry: Registry::with_prefix("tandem"),
            standard: Registry::default(),
        };
        let info = out.gauge("build_info", "Always 1: the node id and tandem's version");
        info.get_or_create(&labels([
            ("node", self.node_id.as_str()),
            ("version", env!("CARGO_PKG_VERSION")),
        ]))
        .set(1);
        out.single_gauge(
            "config_version",
            "Version of the cluster config the node runs",
            i64::try_from(self.config_version).unwrap_or(i64::MAX),
        );
        process::encode(&mut out, self);
        traffic::encode_listeners(&mut out, &self.l4_listeners, &self.http_listeners);
        traffic::encode_pools(&mut out, &self.pools);
        traffic::encode_sticky(&mut out, &self.sticky);
        traffic::encode_certificates(&mut out, &self.certificates);
        traffic::encode_acme(&mut out, &self.acme);
        vrrp::encode(&mut out, &self.vrrp);
        cluster::encode(&mut out, self.cluster.as_ref());
        let admin_rejected = out.counter(
            "admin_rejected",
            "Admin API requests refused for what the client sent, by reason (body_too_large, malformed_json, unauthorized)",
        );
        for (reason, n) in &self.admin_rejected {
            admin_rejected
                .get_or_create(&labels([("reason", reason)]))
                .inc_by(*n);
        }
        // Two registries, one exposition: the standard names first, without their
        // closing `# EOF` (OpenMetrics allows one, at the very end).
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &out.standard)
            .expect("writing to a String cannot fail");
        if let Some(body) = text.strip_suffix("# EOF\n") {
            text.truncate(body.len());
        }
        prometheus_client::encoding::text::encode(&mut text, &out.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// The expiry of each TLS listener certificate (and the status listener's, as listener
/// `node.status`), read from its file now: a renewed file shows before the reload that
/// serves it, and an expired one still shows (the gauge is for alerting before that).
/// ACME certificates show as `cert="acme:<domains>"`, with the expiry of the one this node
/// serves.
fn certificates(config: &tandem_config::Config, node: &Node) -> Vec<(String, String, SystemTime)> {
    let mut out = Vec::new();
    let status_tls = config.node.status.as_ref().and_then(|s| s.tls.as_ref());
    if let Some(tls) = status_tls {
        if let Ok(at) = tandem_tls::leaf_not_after(&tls.cert) {
            out.push(("node.status".into(), tls.cert.display().to_string(), at));
        }
    }
    for l in &config.cluster.listeners {
        let Some(tls) = &l.tls else { continue };
        for c in &tls.certificates {
            if let Ok(at) = tandem_tls::leaf_not_after(&c.cert) {
                out.push((l.name.clone(), c.cert.display().to_string(), at));
            }
        }
        if let Some(acme) = &tls.acme {
            let name = acme.name();
            if let Some(cert) = node.http().acme_certificate(&name) {
                out.push((l.name.clone(), format!("acme:{name}"), cert.not_after));
            }
        }
    }
    out
}

/// A label set: (name, value) pairs, in order.
pub(crate) type Labels = Vec<(String, String)>;

pub(crate) fn labels<const N: usize>(pairs: [(&str, &str); N]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(crate) type FloatGauge = Gauge<f64, AtomicU64>;

/// The registry of one scrape. Each method registers a family (under `tandem_`) and
/// returns a handle to fill; families left empty are not encoded.
pub(crate) struct Out {
    registry: Registry,
    /// Names without the `tandem_` prefix: the Prometheus conventions' `process_*`, which
    /// dashboards and alerts written for any exporter already use.
    standard: Registry,
}

impl Out {
    /// [`Out::single_gauge`] under a standard name (no `tandem_` prefix).
    pub(crate) fn standard_gauge(&mut self, name: &str, help: &str, value: f64) {
        let gauge = FloatGauge::default();
        gauge.set(value);
        self.standard.register(name, help, gauge);
    }

    /// [`Out::single_float_counter`] under a standard name (`_total` appended).
    pub(crate) fn standard_counter(&mut self, name: &str, help: &str, value: f64) {
        let counter = Counter::<f64, AtomicU64>::default();
        counter.inc_by(value);
        self.standard.register(name, help, counter);
    }

    /// A counter family; prometheus-client appends `_total` to `name`.
    pub(crate) fn counter(&mut self, name: &str, help: &str) -> Family<Labels, Counter> {
        let family = Family::default();
        self.registry.register(name, help, family.clone());
        family
    }

    /// A gauge without labels.
    pub(crate) fn single_gauge(&mut self, name: &str, help: &str, value: i64) {
        let gauge = Gauge::<i64>::default();
        gauge.set(value);
        self.registry.register(name, help, gauge);
    }

    /// A float gauge without labels.
    pub(crate) fn single_float_gauge(&mut self, name: &str, help: &str, value: f64) {
        let gauge = FloatGauge::default();
        gauge.set(value);
        self.registry.register(name, help, gauge);
    }

    /// A float counter without labels (`_total` appended).
    pub(crate) fn single_float_counter(&mut self, name: &str, help: &str, value: f64) {
        let counter = Counter::<f64, AtomicU64>::default();
        counter.inc_by(value);
        self.registry.register(name, help, counter);
    }

    pub(crate) fn gauge(&mut self, name: &str, help: &str) -> Family<Labels, Gauge> {
        let family = Family::default();
        self.registry.register(name, help, family.clone());
        family
    }

    pub(crate) fn float_gauge(&mut self, name: &str, help: &str) -> Family<Labels, FloatGauge> {
        let family = Family::default();
        self.registry.register(name, help, family.clone());
        family
    }

    /// Live histograms, encoded as they are (their unit is appended to `name`).
    pub(crate) fn histograms(
        &mut self,
        name: &'static str,
        help: &'static str,
        unit: Unit,
        series: Vec<(Labels, Histogram)>,
    ) {
        if !series.is_empty() {
            self.registry.register_collector(Box::new(Histograms {
                name,
                help,
                unit,
                series,
            }));
        }
    }
}

/// Encodes histograms that live elsewhere (in the pools), one series per label set.
#[derive(Debug)]
struct Histograms {
    name: &'static str,
    help: &'static str,
    unit: Unit,
    series: Vec<(Labels, Histogram)>,
}

impl Collector for Histograms {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(
            self.name,
            self.help,
            Some(&self.unit),
            MetricType::Histogram,
        )?;
        for (labels, histogram) in &self.series {
            histogram.encode(metric.encode_family(labels)?)?;
        }
        Ok(())
    }
}
