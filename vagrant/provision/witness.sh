#!/usr/bin/env bash
# The witness: the third Raft voter (tandemd witness, systemd/tandem-witness.service),
# joined through lb1.
# Usage: witness.sh NAME IP RAFT_ID "lb1=IP,..."
set -euo pipefail
# shellcheck source=vagrant/provision/lib.sh
. /vagrant/vagrant/provision/lib.sh
name="${1:?NAME}" ip="${2:?IP}" raft_id="${3:?RAFT_ID}" hosts="${4:?HOSTS}"

install_tandem
install_pki "$name"
cat >/etc/tandem/witness.toml.new <<TOML
# Written by vagrant/provision/witness.sh (as config/witness.toml).
[node]
id = "$name"
data_dir = "/var/lib/tandem-witness"
admin_socket = "/run/tandem-witness/admin.sock"

[node.cluster]
raft_id = $raft_id
listen = "$ip:$RAFT_PORT"
role = "witness"
cert_dir = "$CERT_DIR"
hosts = $(hosts_toml "$name" "$hosts")
TOML
install -m 0640 -o root -g tandem /etc/tandem/witness.toml.new /etc/tandem/witness.toml
rm -f /etc/tandem/witness.toml.new

systemctl enable --quiet tandem-witness
systemctl restart tandem-witness
join_cluster /run/tandem-witness/admin.sock "$name" lb1
tandemctl --socket /run/tandem-witness/admin.sock cluster status || true
