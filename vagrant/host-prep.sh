#!/usr/bin/env bash
# Prepares a Debian 12 host to run the drill VMs with Vagrant and libvirt (idempotent; run
# as root; vagrant/README.md, "Running it"):
#   - the packages: Vagrant with vagrant-libvirt, libvirt, QEMU, debootstrap (the box
#     build, vagrant/build-box.sh), dnsmasq (libvirt's DHCP), rsync (the synced folder);
#   - without systemd as PID 1 (containers, some CI runners): virtlogd and libvirtd are
#     started here, since no unit will;
#   - without udev: /dev/kvm gets the group kvm and mode 0660 as udev's rule would give
#     it. Otherwise libvirt sees a root-only device, decides its QEMU capabilities are
#     stale and probes QEMU again on every call (4 s each, 85 s per VM created).
#
# Usage: vagrant/host-prep.sh
set -euo pipefail
ME=vagrant/host-prep.sh
say() { echo "$ME: $*"; }
die() {
    echo "$ME: error: $*" >&2
    exit 1
}
[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts libvirtd)"

packages=(vagrant vagrant-libvirt libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils
    debootstrap dnsmasq-base rsync fdisk openssh-client e2fsprogs)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # qemu-utils must come from the same qemu build as qemu-system-x86: a backported
    # qemu-utils (some images ship one) breaks the release's qemu-system-common.
    want=("${missing[@]}")
    qemu="$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ { print $2 }')"
    if [ -n "$qemu" ] && [ "$qemu" != "(none)" ]; then
        want=("${want[@]/#qemu-utils/}")
        want+=("qemu-utils=$qemu")
    fi
    apt-get install -y -qq --no-install-recommends --allow-downgrades "${want[@]}"
fi

# Daemons: systemd starts them where it is PID 1 (socket activation).
if [ "$(ps -p 1 -o comm= 2>/dev/null)" = systemd ]; then
    systemctl start virtlogd.socket libvirtd.socket libvirtd.service
else
    alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
    if ! alive /run/virtlogd.pid; then
        say "starting virtlogd (no systemd here)"
        virtlogd --daemon
    fi
    if ! alive /run/libvirtd.pid; then
        say "starting libvirtd (no systemd here)"
        libvirtd --daemon
    fi
fi
for _ in $(seq 30); do
    virsh -c qemu:///system version >/dev/null 2>&1 && break
    sleep 1
done
virsh -c qemu:///system version >/dev/null 2>&1 || die "libvirtd does not answer on qemu:///system"

# /dev/kvm as udev would leave it (only matters where KVM is used or probed).
if [ -c /dev/kvm ] && getent group kvm >/dev/null; then
    chgrp kvm /dev/kvm
    chmod 0660 /dev/kvm
fi

# The plugin that Debian ships has to be visible to Vagrant.
vagrant plugin list 2>/dev/null | grep -q vagrant-libvirt ||
    die "vagrant does not list the vagrant-libvirt plugin (Debian's vagrant-libvirt package provides it)"
say "host ready: libvirtd answers (QEMU $(virsh -c qemu:///system version 2>/dev/null | awk '/Running hypervisor/ { print $NF }')), vagrant $(vagrant --version | awk '{ print $2 }')"
