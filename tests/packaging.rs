//! Installing: appliance/install.sh and the Debian package, each in a scratch root. One test
//! binary (issue 14); each former binary is a module.

#[path = "packaging/debian_package.rs"]
mod debian_package;
#[path = "packaging/install_script.rs"]
mod install_script;
