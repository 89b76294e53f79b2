//! The admin API end to end: access (TCP token, Unix socket group), the API itself, changes
//! under load, and VRRP status in a namespace lab. One test binary (issue 14); each former
//! binary is a module.

#[path = "admin/access.rs"]
mod access;
#[path = "admin/api.rs"]
mod api;
#[path = "admin/load.rs"]
mod load;
#[path = "admin/vrrp.rs"]
mod vrrp;
