#!/usr/bin/env bash
# lb1/lb2: tandem installed with appliance/install.sh, a cluster config (VRRP under Raft
# leases, the VIP with an HTTP listener on :8080 over web1/web2), tandemd under systemd;
# lb2 joins through lb1.
# Usage: lb.sh NAME IP RAFT_ID PRIORITY VIP bootstrap|join "lb1=IP,..."
set -euo pipefail
# shellcheck source=vagrant/provision/lib.sh
. /vagrant/vagrant/provision/lib.sh
name="${1:?NAME}" ip="${2:?IP}" raft_id="${3:?RAFT_ID}" priority="${4:?PRIORITY}"
vip="${5:?VIP}" mode="${6:?bootstrap|join}" hosts="${7:?HOSTS}"

install_tandem
install_pki "$name"
iface="$(iface_of "$ip")"
[ -n "$iface" ] || die "no interface has $ip (the private network)"
web1="$(tr , '\n' <<<"$hosts" | sed -n 's/^web1=//p')"
web2="$(tr , '\n' <<<"$hosts" | sed -n 's/^web2=//p')"

# Written every time (provisioning owns this file on the drill boxes).
cat >/etc/tandem/tandem.toml.new <<TOML
# Written by vagrant/provision/lb.sh for $name. Cluster-wide part first (top-level keys
# before any table); after the first start the replicated config is in force.
version = 1

[[vip_group]]
name = "front"
vrid = 51
addresses = ["$vip/24"]
advert_interval = "200ms"
preempt = true

[[listener]]
name = "web"
protocol = "http"
bind = "0.0.0.0:8080"
pool = "web"

[[pool]]
name = "web"
algorithm = "round_robin"
[pool.health_check]
kind = "http"
path = "/"
interval = "500ms"
timeout = "300ms"
fall = 2
rise = 2
[[pool.backend]]
id = "web1"
address = "$web1:8000"
[[pool.backend]]
id = "web2"
address = "$web2:8000"

[node]
id = "$name"
data_dir = "/var/lib/tandem"
drain_timeout = "2s"

[node.cluster]
raft_id = $raft_id
listen = "$ip:$RAFT_PORT"
bootstrap = $([ "$mode" = bootstrap ] && echo true || echo false)
cert_dir = "$CERT_DIR"
hosts = $(hosts_toml "$name" "$hosts")

[node.vrrp]
interface = "$iface"
fencing = "raft"

[[node.vrrp.instance]]
group = "front"
priority = $priority
TOML
tandemd check-config /etc/tandem/tandem.toml.new
install -m 0640 -o root -g tandem /etc/tandem/tandem.toml.new /etc/tandem/tandem.toml
rm -f /etc/tandem/tandem.toml.new

systemctl enable --quiet tandemd
systemctl restart tandemd
if [ "$mode" = join ]; then
    join_cluster /run/tandem/admin.sock "$name" lb1
fi
tandemctl cluster status || true
