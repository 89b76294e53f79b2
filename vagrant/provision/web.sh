#!/usr/bin/env bash
# A drill backend: a tiny HTTP server on IP:8000 whose page is the backend's name, as the
# unit tandem-web-NAME (Restart=no: the kill-backend drill kills it and starts it again).
# With "extra" the backend shares a VM (the client in the CI set): the unit puts IP on the
# interface that carries the VM's own drill address before it starts.
# Usage: web.sh NAME IP [extra]
set -euo pipefail
# shellcheck source=vagrant/provision/lib.sh
. /vagrant/vagrant/provision/lib.sh
name="${1:?NAME}" ip="${2:?IP}" extra="${3:-}"

apt_need python3
install -d -m 0755 "/srv/tandem-web/$name"
echo "$name" >"/srv/tandem-web/$name/index.html"
pre=""
if [ "$extra" = extra ]; then
    iface="$(ip -o -4 addr show | awk '$4 ~ /^192\.0\.2\./ { print $2; exit }')"
    [ -n "$iface" ] || die "no interface on 192.0.2.0/24 to add $ip to"
    # "+": as root, unlike the server (DynamicUser); "-": the address may be there already.
    pre="ExecStartPre=-+/usr/sbin/ip addr add $ip/24 dev $iface"
fi
cat >"/etc/systemd/system/tandem-web-$name.service" <<UNIT
[Unit]
Description=tandem drill backend $name (python3 -m http.server on $ip:8000)
After=network-online.target
Wants=network-online.target

[Service]
$pre
ExecStart=/usr/bin/python3 -m http.server 8000 --bind $ip --directory /srv/tandem-web/$name
DynamicUser=yes
Restart=no

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --quiet "tandem-web-$name"
systemctl restart "tandem-web-$name"
say "$name serves http://$ip:8000/"
