#!/usr/bin/env bash
# A failover lab on one machine, built from network namespaces, for people to watch and
# break by hand: tandem (or keepalived) nodes sharing a VRRP VIP, or (up --cluster) a fenced
# tandem cluster with a witness, two HTTP backends and the drills of vagrant/drills/.
# Needs root.
#
# Usage: appliance/lab.sh [--name NAME] [--state-dir DIR] COMMAND [ARGS]
#
#   up [--nodes N] [--interval 1s|100ms] [--keepalived nK]... [--ipv6]
#                         build the lab and start every node (default 2 nodes, 1s adverts);
#                         --keepalived nK runs keepalived (vrrp_version 3) on node K instead
#                         of tandem's VRRP speaker (repeat for more nodes); --ipv6 floats
#                         the IPv6 VIP 2001:db8:51::100/64 instead (an IPv6 VRRP instance,
#                         keepalived with native_ipv6; listeners on [::]; probe and drills
#                         go to [2001:db8:51::100]:7000)
#   up --cluster [--interval 200ms]
#                         the cluster lab: n1 and n2 forward and speak VRRP under Raft
#                         leases (fencing = "raft", priorities 150/100), a witness (the
#                         third voter), web1 and web2 (HTTP backends that answer their
#                         name), a client. PKI by `tandemctl cluster init`; n1 bootstraps,
#                         the witness and n2 join. The VIP carries HTTP :8080 (round robin
#                         over web1/web2, health-checked) and the who-am-I :7000.
#   down                  stop everything (by recorded PID) and delete the namespaces;
#                         safe to run twice. Logs and configs stay in the state dir.
#   status                per node: processes alive?, holds the VIP?, last VRRP state;
#                         the client's neighbour entry for the VIP; active partitions;
#                         in a cluster lab also the witness, the backends and
#                         `tandemctl cluster status`
#   kill NODE [--signal KILL|TERM|STOP|CONT]
#                         signal a node's VRRP speaker and forwarder (default KILL); in a
#                         cluster lab NODE may also be witness, web1 or web2
#   start NODE            start a killed node again (same config; a cluster node rejoins
#                         from its Raft state)
#   partition NODE...     drop all traffic of these nodes at the bridge, both ways
#   partition --vrrp      drop only VRRP (IP protocol 112) between all nodes
#   partition --between NODE PEER...
#                         drop traffic between NODE and each PEER only (both ways); e.g.
#                         `partition --between n1 n2 witness` cuts n1 from its cluster
#                         peers while the client and the backends still reach it
#   partition --one-way FROM PEER...
#                         drop only what FROM sends to each PEER (FROM still hears them)
#   partition --loss PCT NODE NODE...
#                         drop PCT % of the packets between the named nodes, at random
#   heal                  remove every partition
#   probe [--duration 10s]
#                         tandem-probe from the client to 198.51.100.100:7000 every 10 ms:
#                         which node answers, every change, the longest gap
#   drill crash|term|partition [--probe-timeout 100ms]
#                         probe in the background; 2 s in, right after the holder's next
#                         VRRP advert (tcpdump; so every run strikes at the same point of
#                         the interval), SIGKILL / SIGTERM / isolate the VIP holder; wait; heal; print what the client saw (longest gap,
#                         answerer changes); then restart the node and wait until it holds
#                         the VIP again. A probe to an address nobody holds waits out its
#                         timeout, so the gap's resolution is that timeout.
#   drill crash-holder|partition-holder|planned-move|kill-backend|rolling-upgrade|all [OPTIONS]
#                         (cluster lab) runs vagrant/drills/run.sh --target lab: HTTP load
#                         through the VIP, the fault, recovery, restore, and one line
#                         `drill=NAME failover_ms=N requests=N failed=N` per drill
#                         (OPTIONS: see vagrant/drills/run.sh --help)
#   logs NODE             print a node's logs
#
# Options:
#   --name NAME           run several labs side by side (default "lab"); namespaces are
#                         tlab-NAME-hub, tlab-NAME-n1 ..., tlab-NAME-client
#   --state-dir DIR       configs, logs and PIDs (default /run/tandem-lab/NAME)
#
# The lab (as in tests/support/netns.rs): a "hub" namespace holds bridge br0; nodes n1..nN
# at 198.51.100.11.. (MAC 02:00:00:00:00:0K) and a client at 198.51.100.50 are namespaces
# joined to it by veth pairs. VIP 198.51.100.100/24, VRID 51; priority 150 for n1, 100 for
# n2, 90 for n3, and so on. Every host also has an IPv6 address from the documentation
# prefix, 2001:db8:51::N/64 with N the last octet of its IPv4 address (n1 ::b, the client
# ::32, in hex), for IPv6 VIPs (`up --ipv6`) and traffic. Every node has a who-am-I backend on 127.0.0.1:7001 (socat, it
# answers the node's name) behind a tandemd listener on 0.0.0.0:7000. A keepalived node runs
# keepalived for VRRP and tandemd without VRRP as its forwarder, so the data path is the same.
# The cluster lab adds the witness at 198.51.100.13 and web1/web2 at 198.51.100.21/22
# (socat on :8000); the Raft transport uses :7300 (docs/cluster.md).
#
# Binaries: tandemd from $TANDEMD, else target/release/tandemd, else target/debug/tandemd
# (the choice is printed, with a warning when it is older than the sources); tandem-probe
# from $TANDEM_PROBE, else next to tandemd, else target/debug or target/release; tandemctl
# (cluster lab) from $TANDEMCTL, else next to tandemd.
# Needs: iproute2, nftables, socat; keepalived for --keepalived; curl for the cluster drills.
#
# Traffic stays inside the lab's namespaces (198.51.100.0/24, 2001:db8:51::/64); the host's interfaces,
# routes and nftables ruleset are never touched.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ME="appliance/lab.sh"

VIP=198.51.100.100
VIP_PREFIX=24
# With `up --ipv6` (IPV6=1 in lab.env) the VIP is VIP6 instead; see use_family.
VIP6=2001:db8:51::100
IPV6_PREFIX=2001:db8:51:
IPV6=0
# Set by use_family: the address family word of `ip addr`, the VIP as host:port, and
# the wildcard address listeners bind.
INET=inet
VIP_TARGET="$VIP:7000"
ANY=0.0.0.0
VRID=51
PORT=7000
BACKEND_PORT=7001
CLIENT_IP=198.51.100.50
MAX_NODES=9
# The cluster lab's hosts besides n1 and n2 (cluster.sh).
WITNESS_IP=198.51.100.13
WEB_PORT=8080
WEB_BACKEND_PORT=8000
RAFT_PORT=7300

NAME=lab
STATE_DIR=""
# Set by `up`, then read back from the state dir's lab.env by every other command.
NODES=0
INTERVAL=""
# "vrrp" (up) or "cluster" (up --cluster); a lab.env without MODE is a VRRP lab.
MODE=vrrp
TANDEMCTL=""
INTERVAL_MS=0
KEEPALIVED_NODES=""
PROBE=""

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

die() {
    echo "$ME: $*" >&2
    exit 1
}

say() {
    echo "$ME: $*"
}

warn() {
    echo "$ME: warning: $*" >&2
}

# ---------------------------------------------------------------- arguments

COMMAND=""
ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
    --name) NAME="${2:?--name needs a value}"; shift 2 ;;
    --name=*) NAME="${1#--name=}"; shift ;;
    --state-dir) STATE_DIR="${2:?--state-dir needs a value}"; shift 2 ;;
    --state-dir=*) STATE_DIR="${1#--state-dir=}"; shift ;;
    -h | --help | help) usage; exit 0 ;;
    *)
        if [ -z "$COMMAND" ]; then
            COMMAND="$1"
        else
            ARGS+=("$1")
        fi
        shift
        ;;
    esac
done
[ -n "$COMMAND" ] || { usage; exit 2; }
[[ "$NAME" =~ ^[A-Za-z0-9_-]{1,24}$ ]] || die "--name must be 1..24 letters, digits, '-' or '_', got '$NAME'"
STATE_DIR="${STATE_DIR:-/run/tandem-lab/$NAME}"
PREFIX="tlab-$NAME"
HUB="$PREFIX-hub"
CLIENT_NS="$PREFIX-client"

if [ "$(id -u)" -ne 0 ]; then
    die "needs root: it creates network namespaces, veth pairs and a bridge (CAP_NET_ADMIN, CAP_SYS_ADMIN). Run it with sudo."
fi

for tool in ip:iproute2 nft:nftables socat:socat setsid:util-linux timeout:coreutils; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || die "missing ${tool%%:*}: apt-get install -y ${tool#*:}"
done


# The pieces, in the order they build on each other: helpers, the VRRP lab (the original
# mode: configs, nodes, up, its drill), the cluster lab, then the commands both share.
LAB_LIB="$ROOT/appliance/lab"
# shellcheck source=appliance/lab/common.sh
. "$LAB_LIB/common.sh"
# shellcheck source=appliance/lab/vrrp.sh
. "$LAB_LIB/vrrp.sh"
# shellcheck source=appliance/lab/cluster.sh
. "$LAB_LIB/cluster.sh"
# shellcheck source=appliance/lab/commands.sh
. "$LAB_LIB/commands.sh"

case "$COMMAND" in
up) cmd_up "${ARGS[@]}" ;;
down) cmd_down "${ARGS[@]}" ;;
status) [ "${#ARGS[@]}" -eq 0 ] || die "status takes no arguments"; cmd_status ;;
kill) cmd_kill "${ARGS[@]}" ;;
start) cmd_start "${ARGS[@]}" ;;
partition) cmd_partition "${ARGS[@]}" ;;
heal) cmd_heal "${ARGS[@]}" ;;
probe) cmd_probe "${ARGS[@]}" ;;
drill) cmd_drill "${ARGS[@]}" ;;
logs) cmd_logs "${ARGS[@]}" ;;
*) die "unknown command '$COMMAND' (see --help)" ;;
esac
