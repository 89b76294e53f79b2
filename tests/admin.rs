//! The admin surfaces end to end: the admin API (access by TCP token or Unix socket group,
//! the API itself, changes under load, VRRP status in a namespace lab), tandemctl, the
//! status page, and a cluster's admin and transport under abuse. One test binary (issue
//! 14: each binary links the whole stack); each former binary is a module.

#[path = "admin/access.rs"]
mod access;
#[path = "admin/api.rs"]
mod api;
#[path = "cluster_admin.rs"]
mod cluster_admin;
#[path = "admin/load.rs"]
mod load;
#[allow(dead_code)]
mod metrics_support;
#[path = "status_page.rs"]
mod status_page;
#[path = "tandemctl.rs"]
mod tandemctl;
#[path = "admin/vrrp.rs"]
mod vrrp;

use std::net::SocketAddr;
use tandem_tests::{free_port, tcp_config, NameBackend};

fn local(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

/// Backends a and b (weights 1 and 2) behind a round-robin TCP listener: (a, b, port, config).
async fn two_backends() -> (NameBackend, NameBackend, u16, String) {
    let a = NameBackend::start("a").await;
    let b = NameBackend::start("b").await;
    let port = free_port();
    let config = tcp_config(
        port,
        "round_robin",
        &[("a", a.addr, 1), ("b", b.addr, 2)],
        "",
        "",
    );
    (a, b, port, config)
}
