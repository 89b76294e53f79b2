#!/usr/bin/env bash
# Runs on the HOST (a Vagrant trigger before up/provision/reload): makes the cluster PKI
# once with tandemctl cluster init (docs/cluster.md, step 1). Idempotent: nothing happens
# when DIR/ca.pem exists. ca.key stays on the host (the Vagrantfile keeps it out of the
# synced folder).
#
# Usage: provision/host-pki.sh DIR REPO     (tandemctl from $TANDEMCTL or REPO/target/release)
set -euo pipefail
dir="${1:?DIR}"
repo="${2:?REPO}"
# vagrant-libvirt brings VMs up in parallel, each running this trigger: one at a time, or
# two `cluster init` runs mix their files (a node certificate of another CA).
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
if [ -f "$dir/ca.pem" ]; then
    echo "cluster PKI: $dir exists"
    exit 0
fi
ctl="${TANDEMCTL:-$repo/target/release/tandemctl}"
if [ ! -x "$ctl" ]; then
    echo "cluster PKI: no $ctl: build tandem first (cargo build --release) or set TANDEMCTL" >&2
    exit 1
fi
"$ctl" cluster init --dir "$dir" lb1 lb2 witness
