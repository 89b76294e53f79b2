#!/usr/bin/env bash
# Every box: the lab's names in /etc/hosts, and the tools the drills use on it.
# Usage: common.sh NAME "lb1=IP,lb2=IP,..."
set -euo pipefail
# shellcheck source=vagrant/provision/lib.sh
. /vagrant/vagrant/provision/lib.sh
name="${1:?NAME}"
hosts="${2:?HOSTS}"

# Replace our block of /etc/hosts (idempotent).
{
    sed '/# tandem-drills begin/,/# tandem-drills end/d' /etc/hosts
    echo "# tandem-drills begin"
    IFS=, read -ra entries <<<"$hosts"
    for e in "${entries[@]}"; do echo "${e#*=} ${e%%=*}"; done
    echo "# tandem-drills end"
} >/etc/hosts.tandem-new
mv /etc/hosts.tandem-new /etc/hosts

# nftables for the partition drill, curl for the load and checks.
apt_need curl nftables iproute2
say "$name: common setup done"
