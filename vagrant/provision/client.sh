#!/usr/bin/env bash
# The client: curl for the drills' load (vagrant/drills/lib/load.sh runs here over ssh).
# Usage: client.sh VIP
set -euo pipefail
# shellcheck source=vagrant/provision/lib.sh
. /vagrant/vagrant/provision/lib.sh
vip="${1:?VIP}"
apt_need curl
say "client ready; the drills send their load to http://$vip:8080/"
