#!/usr/bin/env bash
# web1/web2: a tiny HTTP backend on :8000 whose page is the box's name, as the unit
# tandem-web (Restart=no: the kill-backend drill kills it and starts it again).
# Usage: web.sh NAME IP
set -euo pipefail
# shellcheck source=vagrant/provision/lib.sh
. /vagrant/vagrant/provision/lib.sh
name="${1:?NAME}" ip="${2:?IP}"

apt_need python3
install -d -m 0755 /srv/tandem-web
echo "$name" >/srv/tandem-web/index.html
cat >/etc/systemd/system/tandem-web.service <<UNIT
[Unit]
Description=tandem drill backend $name (python3 -m http.server on $ip:8000)
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=/usr/bin/python3 -m http.server 8000 --bind $ip --directory /srv/tandem-web
DynamicUser=yes
Restart=no

[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --quiet tandem-web
systemctl restart tandem-web
say "$name serves http://$ip:8000/"
