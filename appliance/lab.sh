#!/usr/bin/env bash
# A failover lab on one machine: tandem (or keepalived) nodes sharing a VRRP VIP, built
# from network namespaces, for people to watch and break by hand. Needs root.
#
# Usage: appliance/lab.sh [--name NAME] [--state-dir DIR] COMMAND [ARGS]
#
#   up [--nodes N] [--interval 1s|100ms] [--keepalived nK]...
#                         build the lab and start every node (default 2 nodes, 1s adverts);
#                         --keepalived nK runs keepalived (vrrp_version 3) on node K instead
#                         of tandem's VRRP speaker (repeat for more nodes)
#   down                  stop everything (by recorded PID) and delete the namespaces;
#                         safe to run twice. Logs and configs stay in the state dir.
#   status                per node: processes alive?, holds the VIP?, last VRRP state;
#                         the client's neighbour entry for the VIP; active partitions
#   kill NODE [--signal KILL|TERM|STOP|CONT]
#                         signal a node's VRRP speaker and forwarder (default KILL)
#   start NODE            start a killed node again (same config)
#   partition NODE...     drop all traffic of these nodes at the bridge, both ways
#   partition --vrrp      drop only VRRP (IP protocol 112) between all nodes
#   heal                  remove every partition
#   probe [--duration 10s]
#                         tandem-probe from the client to 198.51.100.100:7000 every 10 ms:
#                         which node answers, every change, the longest gap
#   drill crash|term|partition [--probe-timeout 100ms]
#                         probe in the background; 2 s in, SIGKILL / SIGTERM / isolate the
#                         VIP holder; wait; heal; print what the client saw (longest gap,
#                         answerer changes); then restart the node and wait until it holds
#                         the VIP again. A probe to an address nobody holds waits out its
#                         timeout, so the gap's resolution is that timeout.
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
# n2, 90 for n3, and so on. Every node has a who-am-I backend on 127.0.0.1:7001 (socat, it
# answers the node's name) behind a tandemd listener on 0.0.0.0:7000. A keepalived node runs
# keepalived for VRRP and tandemd without VRRP as its forwarder, so the data path is the same.
#
# Binaries: tandemd from $TANDEMD, else target/release/tandemd, else target/debug/tandemd
# (the choice is printed, with a warning when it is older than the sources); tandem-probe
# from $TANDEM_PROBE, else next to tandemd, else target/debug or target/release.
# Needs: iproute2, nftables, socat; keepalived for --keepalived.
#
# Traffic stays inside the lab's namespaces (198.51.100.0/24); the host's interfaces,
# routes and nftables ruleset are never touched.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ME="appliance/lab.sh"

VIP=198.51.100.100
VIP_PREFIX=24
VRID=51
PORT=7000
BACKEND_PORT=7001
CLIENT_IP=198.51.100.50
MAX_NODES=9

NAME=lab
STATE_DIR=""
# Set by `up`, then read back from the state dir's lab.env by every other command.
NODES=0
INTERVAL=""
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

# ---------------------------------------------------------------- helpers

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

# "1s" / "100ms" / "2500ms" → milliseconds
to_ms() {
    local text="$1"
    if [[ "$text" =~ ^([0-9]+)ms$ ]]; then
        echo "$((10#${BASH_REMATCH[1]}))"
    elif [[ "$text" =~ ^([0-9]+)s$ ]]; then
        echo "$((10#${BASH_REMATCH[1]} * 1000))"
    else
        return 1
    fi
}

ns_of() { echo "$PREFIX-$1"; }

ns_exists() { [ -e "/run/netns/$1" ]; }

lab_namespaces() {
    ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$PREFIX-(hub|client|n[0-9]+)$" || true
}

now_ms() { date +%s%3N; }

priority_of() { # priority_of K
    if [ "$1" -eq 1 ]; then echo 150; else echo $((100 - 10 * ($1 - 2))); fi
}

load_state() {
    [ -f "$STATE_DIR/lab.env" ] || die "lab '$NAME' is not up (no $STATE_DIR/lab.env); start it with: $ME --name $NAME up"
    # shellcheck source=/dev/null
    . "$STATE_DIR/lab.env"
    ns_exists "$HUB" || die "lab '$NAME' has state in $STATE_DIR but no namespace $HUB: run '$ME --name $NAME down' then 'up'"
}

check_node() { # check_node NODE → exits unless NODE is n1..nN of this lab
    if ! [[ "$1" =~ ^n([0-9]+)$ ]] || [ "${BASH_REMATCH[1]}" -lt 1 ] || [ "${BASH_REMATCH[1]}" -gt "$NODES" ]; then
        die "no node '$1' in lab '$NAME' (nodes n1..n$NODES)"
    fi
}

impl_of() { # impl_of NODE → tandem | keepalived
    case " $KEEPALIVED_NODES " in
    *" $1 "*) echo keepalived ;;
    *) echo tandem ;;
    esac
}

lab_impl() {
    local k t=0 ka=0
    for k in $(seq "$NODES"); do
        if [ "$(impl_of "n$k")" = keepalived ]; then ka=$((ka + 1)); else t=$((t + 1)); fi
    done
    if [ "$ka" -eq 0 ]; then echo tandem; elif [ "$t" -eq 0 ]; then echo keepalived; else echo mixed; fi
}

read_pid() { # read_pid FILE → the PID in it, or nothing
    local pid=""
    if [ -f "$1" ]; then pid="$(tr -dc '0-9' <"$1")"; fi
    if [ -n "$pid" ]; then echo "$pid"; fi
}

# How a recorded process is doing: running / stopped / dead. Only a PID that lives in the
# expected namespace counts (a recycled PID elsewhere is "dead").
proc_state() { # proc_state PID NS
    local pid="$1" ns="$2" st
    [ -n "$pid" ] || { echo dead; return; }
    kill -0 "$pid" 2>/dev/null || { echo dead; return; }
    [ "$(ip netns identify "$pid" 2>/dev/null || true)" = "$ns" ] || { echo dead; return; }
    st="$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1 || true)"
    case "$st" in
    Z | X | "") echo dead ;;
    T | t) echo stopped ;;
    *) echo running ;;
    esac
}

alive() { [ "$(proc_state "$1" "$2")" != dead ]; }

# Starts "PROGRAM ARGS..." inside NS in its own session (Ctrl-C on this script does not
# reach it), output appended to LOG, PID written to PIDFILE. `ip netns exec` execs the
# program, and setsid execs without forking because a background job of a script is no
# process-group leader: $! is the program's own PID (checked below).
spawn() { # spawn NS LOG PIDFILE PROGRAM ARGS...
    local ns="$1" log="$2" pidfile="$3" pid
    shift 3
    printf '=== %s: %s\n' "$(date '+%F %T')" "$*" >>"$log"
    setsid ip netns exec "$ns" "$@" >>"$log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$pidfile"
    for _ in $(seq 50); do
        [ "$(ip netns identify "$pid" 2>/dev/null || true)" = "$ns" ] && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.02
    done
    tail -n 20 "$log" >&2 || true
    die "$1 did not start in $ns (log above, $log)"
}

# Signals the PIDs given that are alive in NS, all with one kill(1), so that they stop at
# the same instant (checking each PID takes milliseconds; a node's processes must not die
# one by one). Prints nothing; returns 1 if none was alive.
signal_pids() { # signal_pids SIGNAL NS PID...
    local sig="$1" ns="$2" pid live=()
    shift 2
    for pid in "$@"; do
        if alive "$pid" "$ns"; then live+=("$pid"); fi
    done
    [ "${#live[@]}" -gt 0 ] || return 1
    kill "-$sig" "${live[@]}" 2>/dev/null || true
}

has_vip() { # has_vip NODE: the VIP is on the node's eth0
    local addrs
    addrs="$(ip -n "$(ns_of "$1")" -4 -o addr show dev eth0 2>/dev/null || true)"
    grep -q " inet $VIP/" <<<"$addrs"
}

# VIP holders, by node name, from the kernel's view of each node's eth0.
holders() {
    local k out=()
    for k in $(seq "$NODES"); do
        if has_vip "n$k"; then out+=("n$k"); fi
    done
    echo "${out[*]:-}"
}

vip_lifetime() { # vip_lifetime NODE → e.g. "2sec" or "forever"
    ip -n "$(ns_of "$1")" -4 -o addr show dev eth0 2>/dev/null |
        awk -v vip="$VIP/" '{for (i = 1; i <= NF; i++) if ($i == "inet" && index($(i+1), vip) == 1) f = 1; if (f) {for (i = 1; i <= NF; i++) if ($i == "valid_lft") {print $(i+1); exit}}}'
}

# One connection from the client to VIP:7000; prints the first line (a node name) or nothing.
client_ask() {
    timeout 2 ip netns exec "$CLIENT_NS" bash -c \
        "exec 3<>/dev/tcp/$VIP/$PORT && head -n 1 <&3" 2>/dev/null | tr -d '\r' || true
}

last_state() { # last_state NODE → MASTER / BACKUP / FAULT / INIT or "?"
    local node="$1" s=""
    if [ "$(impl_of "$node")" = keepalived ]; then
        s="$(grep -ao 'Entering [A-Z]* STATE' "$STATE_DIR/$node.keepalived.log" 2>/dev/null | tail -n 1 | awk '{print $2}' || true)"
    else
        # (Colour codes stripped: an older tandemd coloured its log even off a terminal.)
        s="$(grep -a 'VRRP state change' "$STATE_DIR/$node.log" 2>/dev/null | tail -n 1 |
            sed -e 's/\x1b\[[0-9;]*m//g' | sed -n 's/.* to=\([A-Za-z]*\).*/\1/p' | tr '[:lower:]' '[:upper:]' || true)"
    fi
    echo "${s:-?}"
}

# Waits until exactly one node (EXPECTED, if given) holds the VIP and the client reaches it
# through the VIP. Prints the holder. Bounded by LIMIT seconds.
settle() { # settle LIMIT_S [EXPECTED]
    local limit="$1" expected="${2:-}" h ans
    for _ in $(seq $((limit * 5))); do
        h="$(holders)"
        if [ -n "$h" ] && [ "${h// /}" = "$h" ] && { [ -z "$expected" ] || [ "$h" = "$expected" ]; }; then
            ans="$(client_ask)"
            if [ "$ans" = "$h" ]; then
                echo "$h"
                return 0
            fi
        fi
        sleep 0.2
    done
    return 1
}

# ---------------------------------------------------------------- binaries

pick_tandemd() {
    local bin how newer
    if [ -n "${TANDEMD:-}" ]; then
        bin="$TANDEMD"
        how="from \$TANDEMD"
    elif [ -x "$ROOT/target/release/tandemd" ]; then
        bin="$ROOT/target/release/tandemd"
        how="release build"
    elif [ -x "$ROOT/target/debug/tandemd" ]; then
        bin="$ROOT/target/debug/tandemd"
        how="debug build"
    else
        die "no tandemd binary: build it (cargo build --release -p tandemd) or set TANDEMD=/path/to/tandemd"
    fi
    [ -x "$bin" ] || die "tandemd '$bin' ($how) is not an executable file"
    bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
    say "tandemd: $bin ($how, built $(date -r "$bin" '+%F %T'))" >&2
    if [ -d "$ROOT/crates" ]; then
        # The daemon's own sources (not other binaries' or tests').
        newer="$(find "$ROOT"/crates/*/src -name '*.rs' -not -path '*/src/bin/*' -newer "$bin" -print -quit 2>/dev/null || true)"
        [ -z "$newer" ] || warn "$bin may be stale: it is older than the sources (e.g. ${newer#"$ROOT"/}): rebuild it, or set TANDEMD to a fresh build"
    fi
    echo "$bin"
}

pick_probe() { # pick_probe TANDEMD_PATH
    local c
    for c in "${TANDEM_PROBE:-}" "$(dirname "$1")/tandem-probe" "$ROOT/target/debug/tandem-probe" "$ROOT/target/release/tandem-probe"; do
        if [ -n "$c" ] && [ -x "$c" ]; then
            echo "$c"
            return 0
        fi
    done
    echo ""
}

need_probe() {
    PROBE="${TANDEM_PROBE:-${PROBE:-}}"
    if [ -z "$PROBE" ] || [ ! -x "$PROBE" ]; then
        die "no tandem-probe binary: build it (cargo build -p tandemd builds target/debug/tandem-probe) or set TANDEM_PROBE"
    fi
}

# ---------------------------------------------------------------- configs

tandem_config() { # tandem_config K → tandemd config of node K (VRRP speaker + forwarder)
    local k="$1"
    cat <<EOF
# Generated by $ME for lab '$NAME': node n$k ($(date '+%F %T')).
[node]
id = "n$k"
drain_timeout = "1s"
admin_socket = "$STATE_DIR/n$k.sock"

[node.vrrp]
interface = "eth0"
garp_refresh = "2s"

[[node.vrrp.instance]]
group = "front"
priority = $(priority_of "$k")

[[vip_group]]
name = "front"
vrid = $VRID
addresses = ["$VIP/$VIP_PREFIX"]
advert_interval = "$INTERVAL"
preempt = true

$(forwarder_config)
EOF
}

forwarder_config() {
    cat <<EOF
[[listener]]
name = "who"
bind = "0.0.0.0:$PORT"
pool = "local"

[[pool]]
name = "local"
[[pool.backend]]
id = "self"
address = "127.0.0.1:$BACKEND_PORT"
EOF
}

forwarder_only_config() { # forwarder_only_config K → tandemd without VRRP (keepalived nodes)
    cat <<EOF
# Generated by $ME for lab '$NAME': node n$1's forwarder; keepalived speaks VRRP here.
[node]
id = "n$1"
drain_timeout = "1s"
admin_socket = "$STATE_DIR/n$1.sock"

$(forwarder_config)
EOF
}

keepalived_config() { # keepalived_config K
    local k="$1" advert
    advert="$(awk -v m="$INTERVAL_MS" 'BEGIN { printf "%g", m / 1000 }')"
    cat <<EOF
# Generated by $ME for lab '$NAME': node n$k. Same VRID, VIP, priority and interval as a
# tandem node; gratuitous ARP as tandem's defaults in the lab (5 at once, again after 5 s,
# refresh every 2 s while master).
global_defs {
    router_id n$k
    vrrp_version 3
    vrrp_garp_master_delay 5
    vrrp_garp_master_repeat 5
    script_user root
}
vrrp_instance front {
    state BACKUP
    interface eth0
    virtual_router_id $VRID
    priority $(priority_of "$k")
    advert_int $advert
    garp_master_refresh 2
    virtual_ipaddress {
        $VIP/$VIP_PREFIX
    }
}
EOF
}

# ---------------------------------------------------------------- nodes

node_pids() { # node_pids NODE → the PIDs of its VRRP speaker and forwarder (not the backend)
    local n="$1"
    if [ "$(impl_of "$n")" = keepalived ]; then
        # The VRRP child first: see kill_node.
        read_pid "$STATE_DIR/$n.ka-vrrp.pid"
        read_pid "$STATE_DIR/$n.keepalived.pid"
        read_pid "$STATE_DIR/$n.ka-checkers.pid"
    fi
    read_pid "$STATE_DIR/$n.tandemd.pid"
}

node_alive() { # true if any of the node's processes is alive
    local n="$1" ns pid
    ns="$(ns_of "$n")"
    for pid in $(node_pids "$n"); do
        alive "$pid" "$ns" && return 0
    done
    return 1
}

start_who() { # start_who K
    local k="$1"
    spawn "$(ns_of "n$k")" "$STATE_DIR/n$k.who.log" "$STATE_DIR/n$k.who.pid" \
        socat "TCP-LISTEN:$BACKEND_PORT,bind=127.0.0.1,fork,reuseaddr" "SYSTEM:echo n$k"
}

start_node() { # start_node K: the VRRP speaker and the forwarder of node K
    local k="$1" n="n$1" ns
    ns="$(ns_of "$n")"
    if [ "$(impl_of "$n")" = keepalived ]; then
        forwarder_only_config "$k" >"$STATE_DIR/$n.toml"
        keepalived_config "$k" >"$STATE_DIR/$n.keepalived.conf"
        # keepalived refuses to start over a pid file whose process lives; ours are dead here.
        rm -f "$STATE_DIR/$n.ka-main.pid" "$STATE_DIR/$n.ka-vrrp.pid" "$STATE_DIR/$n.ka-checkers.pid"
        spawn "$ns" "$STATE_DIR/$n.keepalived.log" "$STATE_DIR/$n.keepalived.pid" \
            keepalived --dont-fork --log-console --log-detail --no-syslog --vrrp \
            --use-file "$STATE_DIR/$n.keepalived.conf" \
            --pid "$STATE_DIR/$n.ka-main.pid" --vrrp_pid "$STATE_DIR/$n.ka-vrrp.pid" \
            --checkers_pid "$STATE_DIR/$n.ka-checkers.pid"
    else
        tandem_config "$k" >"$STATE_DIR/$n.toml"
    fi
    RUST_LOG="${RUST_LOG:-info,tandem_vrrp=debug}" \
        spawn "$ns" "$STATE_DIR/$n.log" "$STATE_DIR/$n.tandemd.pid" \
        "$TANDEMD" run --config "$STATE_DIR/$n.toml"
    if [ "$(impl_of "$n")" = keepalived ]; then
        # Its VRRP child writes its pid file a moment after start.
        for _ in $(seq 50); do
            [ -s "$STATE_DIR/$n.ka-vrrp.pid" ] && break
            sleep 0.05
        done
        [ -s "$STATE_DIR/$n.ka-vrrp.pid" ] || warn "keepalived on $n wrote no VRRP pid file yet (see $ME logs $n)"
    fi
}

# Signals node NODE's VRRP speaker and forwarder. For keepalived, KILL first stops the
# parent and its VRRP child, so that neither can react (the child would advertise priority
# 0 on its parent's death, or the parent respawn the child): a crash, not a shutdown.
kill_node() { # kill_node NODE SIGNAL
    local n="$1" sig="$2" ns
    ns="$(ns_of "$n")"
    # shellcheck disable=SC2046 # word splitting of the PID list is intended
    set -- $(node_pids "$n")
    local live=() pid
    for pid in "$@"; do
        if alive "$pid" "$ns"; then live+=("$pid"); fi
    done
    [ "${#live[@]}" -gt 0 ] || return 0
    if [ "$(impl_of "$n")" = keepalived ]; then
        case "$sig" in
        KILL) kill -STOP "${live[@]}" 2>/dev/null || true; kill -KILL "${live[@]}" 2>/dev/null || true ;;
        TERM)
            # A planned stop: keepalived's parent tells its VRRP child (priority 0 advert).
            signal_pids TERM "$ns" "$(read_pid "$STATE_DIR/$n.keepalived.pid")" "$(read_pid "$STATE_DIR/$n.tandemd.pid")" || true
            ;;
        *) kill "-$sig" "${live[@]}" 2>/dev/null || true ;;
        esac
    else
        kill "-$sig" "${live[@]}" 2>/dev/null || true
    fi
}

# ---------------------------------------------------------------- commands

cmd_up() {
    local nodes=2 interval=1s ka=() k n
    while [ $# -gt 0 ]; do
        case "$1" in
        --nodes) nodes="${2:?--nodes needs a value}"; shift 2 ;;
        --interval) interval="${2:?--interval needs a value}"; shift 2 ;;
        --keepalived) ka+=("${2:?--keepalived needs a node, e.g. n2}"); shift 2 ;;
        *) die "up: unknown argument '$1' (see --help)" ;;
        esac
    done
    if ! is_uint "$nodes" || [ "$nodes" -lt 1 ] || [ "$nodes" -gt "$MAX_NODES" ]; then
        die "--nodes must be 1..$MAX_NODES"
    fi
    local ms
    ms="$(to_ms "$interval")" || die "--interval must look like 1s or 100ms, got '$interval'"
    if [ "$ms" -lt 10 ] || [ "$ms" -gt 40950 ] || [ $((ms % 10)) -ne 0 ]; then
        die "--interval must be 10ms..40950ms in steps of 10ms (VRRPv3 sends centiseconds)"
    fi
    for n in "${ka[@]}"; do
        if ! [[ "$n" =~ ^n([0-9]+)$ ]] || [ "${BASH_REMATCH[1]}" -lt 1 ] || [ "${BASH_REMATCH[1]}" -gt "$nodes" ]; then
            die "--keepalived $n: no such node (nodes n1..n$nodes)"
        fi
    done
    if [ "${#ka[@]}" -gt 0 ]; then
        command -v keepalived >/dev/null 2>&1 || die "--keepalived needs keepalived: apt-get install -y keepalived"
    fi
    if [ -n "$(lab_namespaces)" ]; then
        die "lab '$NAME' is already up (namespaces $PREFIX-*); '$ME --name $NAME down' first, or pick another --name"
    fi
    local tandemd probe
    tandemd="$(pick_tandemd)"
    probe="$(pick_probe "$tandemd")"
    [ -n "$probe" ] || warn "no tandem-probe binary found: probe and drill will not work (cargo build -p tandemd builds it)"

    mkdir -p "$STATE_DIR"
    find "$STATE_DIR" -maxdepth 1 -type f \( -name '*.pid' -o -name '*.log' -o -name '*.toml' \
        -o -name '*.conf' -o -name 'probe-*.out' -o -name 'lab.env' -o -name '*.sock' \) -delete
    {
        echo "NODES=$nodes"
        echo "INTERVAL=$interval"
        echo "INTERVAL_MS=$ms"
        echo "KEEPALIVED_NODES='${ka[*]:-}'"
        echo "TANDEMD='$tandemd'"
        echo "PROBE='$probe'"
    } >"$STATE_DIR/lab.env"
    # shellcheck source=/dev/null
    . "$STATE_DIR/lab.env"

    # Whatever fails from here on (set -e, die), leave nothing behind.
    UP_DONE=0
    trap 'if [ "$UP_DONE" = 0 ]; then warn "up failed; cleaning up"; cmd_down >/dev/null 2>&1 || true; fi' EXIT

    ip netns add "$HUB"
    ip -n "$HUB" link set lo up
    ip -n "$HUB" link add br0 type bridge
    ip -n "$HUB" link set br0 up
    add_host() { # add_host NAME IP MAC
        local ns="$PREFIX-$1" port="v$1"
        ip netns add "$ns"
        ip -n "$HUB" link add "$port" type veth peer name eth0 netns "$ns"
        ip -n "$HUB" link set "$port" master br0 up
        ip -n "$ns" link set lo up
        ip -n "$ns" link set eth0 address "$3"
        ip -n "$ns" addr add "$2/24" dev eth0
        ip -n "$ns" link set eth0 up
    }
    for k in $(seq "$nodes"); do
        add_host "n$k" "198.51.100.$((10 + k))" "$(printf '02:00:00:00:00:%02x' "$k")"
    done
    add_host client "$CLIENT_IP" 02:00:00:00:00:50

    for k in $(seq "$nodes"); do
        start_who "$k"
        start_node "$k"
    done
    UP_DONE=1
    trap - EXIT

    say "lab '$NAME' is up: $nodes nodes ($(lab_impl)), advert interval $interval, state in $STATE_DIR"
    local limit=$((ms * 5 / 1000 + 10))
    if h="$(settle "$limit")"; then
        say "$h holds the VIP $VIP and answers the client"
    else
        warn "no single VIP holder answering the client within ${limit}s; see '$ME --name $NAME status' and 'logs'"
    fi
    cmd_status
}

cmd_down() {
    local ns pid f pids=() n
    [ $# -eq 0 ] || die "down takes no arguments"
    # Recorded PIDs first, gracefully: TERM, up to 3 s, then KILL.
    if [ -d "$STATE_DIR" ]; then
        for f in "$STATE_DIR"/*.pid; do
            [ -e "$f" ] || continue
            pid="$(read_pid "$f")"
            n="$(basename "$f")"
            n="${n%%.*}"
            case "$n" in
            probe) ns="$CLIENT_NS" ;;
            *) ns="$PREFIX-$n" ;;
            esac
            if [ -n "$pid" ] && alive "$pid" "$ns"; then
                kill -CONT "$pid" 2>/dev/null || true
                kill -TERM "$pid" 2>/dev/null || true
                pids+=("$pid:$ns")
            fi
        done
    fi
    local p left
    for _ in $(seq 30); do
        left=0
        for p in "${pids[@]}"; do
            alive "${p%%:*}" "${p#*:}" && left=1
        done
        [ "$left" -eq 0 ] && break
        sleep 0.1
    done
    for p in "${pids[@]}"; do
        if alive "${p%%:*}" "${p#*:}"; then kill -KILL "${p%%:*}" 2>/dev/null || true; fi
    done
    # Anything else still inside the lab's namespaces was started in the lab (a probe, a
    # forked backend, a shell someone opened there): end it by PID, or the namespace lives on.
    for ns in $(lab_namespaces); do
        for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
            warn "ending PID $pid ($(ps -o comm= -p "$pid" 2>/dev/null || echo '?')) left in $ns"
            kill -KILL "$pid" 2>/dev/null || true
        done
    done
    # Nodes and client, then the hub (the veth pairs go with it).
    local hub_seen=0
    for ns in $(lab_namespaces); do
        if [ "$ns" = "$HUB" ]; then hub_seen=1; continue; fi
        ip netns del "$ns" 2>/dev/null || warn "could not delete namespace $ns"
    done
    if [ "$hub_seen" -eq 1 ]; then
        ip netns del "$HUB" 2>/dev/null || warn "could not delete namespace $HUB"
    fi
    if [ -d "$STATE_DIR" ]; then
        rm -f "$STATE_DIR"/*.pid "$STATE_DIR/lab.env"
    fi
    if [ -n "$(lab_namespaces)" ]; then
        die "namespaces left: $(lab_namespaces | tr '\n' ' ')"
    fi
    if [ -d "$STATE_DIR" ]; then
        say "lab '$NAME' is down (logs and configs kept in $STATE_DIR)"
    else
        say "lab '$NAME' is down"
    fi
}

cmd_status() {
    local k n ns impl pid st procs vip lft line mac who neigh tables
    load_state
    echo "lab '$NAME': $NODES node(s), advert interval $INTERVAL, VIP $VIP/$VIP_PREFIX vrid $VRID, state in $STATE_DIR"
    echo "tandemd: $TANDEMD"
    printf '%-4s %-10s %-5s %-44s %-10s %-10s %s\n' node impl prio processes vip lifetime "last state"
    for k in $(seq "$NODES"); do
        n="n$k"
        ns="$(ns_of "$n")"
        impl="$(impl_of "$n")"
        procs=""
        if [ "$impl" = keepalived ]; then
            pid="$(read_pid "$STATE_DIR/$n.keepalived.pid")"
            st="$(proc_state "$pid" "$ns")"
            procs="keepalived ${pid:--} $st"
            pid="$(read_pid "$STATE_DIR/$n.ka-vrrp.pid")"
            procs="$procs (vrrp ${pid:--} $(proc_state "$pid" "$ns")), "
            pid="$(read_pid "$STATE_DIR/$n.tandemd.pid")"
            procs="${procs}tandemd ${pid:--} $(proc_state "$pid" "$ns")"
        else
            pid="$(read_pid "$STATE_DIR/$n.tandemd.pid")"
            procs="tandemd ${pid:--} $(proc_state "$pid" "$ns")"
        fi
        if has_vip "$n"; then
            vip=HOLDS-VIP
            lft="$(vip_lifetime "$n")"
        else
            vip=-
            lft=-
        fi
        printf '%-4s %-10s %-5s %-44s %-10s %-10s %s\n' "$n" "$impl" "$(priority_of "$k")" "$procs" "$vip" "${lft:-?}" "$(last_state "$n")"
    done
    line="$(ip -n "$CLIENT_NS" neigh show "$VIP" dev eth0 2>/dev/null | head -n 1 || true)"
    mac="$(awk '{for (i = 1; i <= NF; i++) if ($i == "lladdr") print $(i+1)}' <<<"$line")"
    who="?"
    for k in $(seq "$NODES"); do
        [ "$mac" = "$(printf '02:00:00:00:00:%02x' "$k")" ] && who="n$k"
    done
    if [ -n "$mac" ]; then
        neigh="$mac = $who ($(awk '{print $NF}' <<<"$line"))"
    else
        neigh="none${line:+ ($line)}"
    fi
    echo "client neighbour entry for $VIP: $neigh"
    tables="$(ip netns exec "$HUB" nft list tables 2>/dev/null | awk '{print $3}' | tr '\n' ' ' || true)"
    echo "partitions: ${tables:-none}"
}

cmd_kill() {
    local node="" sig=KILL
    load_state
    while [ $# -gt 0 ]; do
        case "$1" in
        --signal) sig="${2:?--signal needs KILL, TERM, STOP or CONT}"; shift 2 ;;
        -*) die "kill: unknown option '$1'" ;;
        *) [ -z "$node" ] || die "kill: one node at a time"; node="$1"; shift ;;
        esac
    done
    [ -n "$node" ] || die "kill: which node? e.g. '$ME kill n1'"
    check_node "$node"
    sig="${sig#SIG}"
    case "$sig" in KILL | TERM | STOP | CONT) ;; *) die "--signal must be KILL, TERM, STOP or CONT" ;; esac
    node_alive "$node" || die "$node has no live process (start it with '$ME --name $NAME start $node')"
    kill_node "$node" "$sig"
    say "sent SIG$sig to $node ($(impl_of "$node"): PIDs $(node_pids "$node" | tr '\n' ' '))"
}

cmd_start() {
    [ $# -eq 1 ] || die "start: name one node, e.g. '$ME start n1'"
    load_state
    check_node "$1"
    local k="${1#n}"
    node_alive "$1" && die "$1 is still running (kill it first, or '--signal CONT' a stopped one)"
    if ! alive "$(read_pid "$STATE_DIR/$1.who.pid")" "$(ns_of "$1")"; then
        start_who "$k"
    fi
    start_node "$k"
    say "started $1 ($(impl_of "$1"))"
}

cmd_partition() {
    load_state
    [ $# -gt 0 ] || die "partition: name nodes (partition n1) or --vrrp"
    if [ "$1" = --vrrp ]; then
        [ $# -eq 1 ] || die "partition --vrrp takes no nodes"
        ip netns exec "$HUB" nft -f - <<'EOF'
table bridge lab_vrrp
flush table bridge lab_vrrp
table bridge lab_vrrp {
    chain forward {
        type filter hook forward priority 0; policy accept;
        ip protocol 112 drop
    }
}
EOF
        say "VRRP (protocol 112) dropped between all nodes; '$ME --name $NAME heal' to undo"
        return
    fi
    local n
    for n in "$@"; do check_node "$n"; done
    for n in "$@"; do
        ip netns exec "$HUB" nft -f - <<EOF
table bridge lab_iso_$n
flush table bridge lab_iso_$n
table bridge lab_iso_$n {
    chain forward {
        type filter hook forward priority 0; policy accept;
        iifname "v$n" drop
        oifname "v$n" drop
    }
}
EOF
    done
    say "isolated $* (all traffic, both ways, at the bridge); '$ME --name $NAME heal' to undo"
}

cmd_heal() {
    [ $# -eq 0 ] || die "heal takes no arguments"
    load_state
    ip netns exec "$HUB" nft flush ruleset
    say "partitions removed"
}

cmd_probe() {
    local duration=10s
    while [ $# -gt 0 ]; do
        case "$1" in
        --duration) duration="${2:?--duration needs a value, e.g. 10s}"; shift 2 ;;
        *) die "probe: unknown argument '$1'" ;;
        esac
    done
    local ms
    ms="$(to_ms "$duration")" || die "--duration must look like 10s or 500ms"
    if [ "$ms" -lt 100 ] || [ "$ms" -gt 3600000 ]; then die "--duration must be 100ms..3600s"; fi
    load_state
    need_probe
    ip netns exec "$CLIENT_NS" "$PROBE" "$VIP:$PORT" --interval 10ms --duration "$duration"
}

cmd_drill() {
    local kind="" probe_timeout=100ms
    while [ $# -gt 0 ]; do
        case "$1" in
        --probe-timeout) probe_timeout="${2:?--probe-timeout needs a value, e.g. 30ms}"; shift 2 ;;
        -*) die "drill: unknown option '$1'" ;;
        *) [ -z "$kind" ] || die "drill: one kind at a time"; kind="$1"; shift ;;
        esac
    done
    case "$kind" in crash | term | partition) ;; *) die "drill: crash, term or partition, not '$kind'" ;; esac
    local pt_ms
    pt_ms="$(to_ms "$probe_timeout")" || die "--probe-timeout must look like 100ms"
    if [ "$pt_ms" -lt 10 ] || [ "$pt_ms" -gt 1000 ]; then die "--probe-timeout must be 10ms..1s"; fi
    load_state
    need_probe
    [ "$NODES" -ge 2 ] || die "a drill needs at least 2 nodes"

    local holder
    holder="$(settle $((INTERVAL_MS * 5 / 1000 + 15)))" ||
        die "the lab has not settled: no single VIP holder answering the client (see '$ME --name $NAME status')"
    # A backup's Master_Down_Interval is under 4 advert intervals; give failover that plus 3 s.
    local fault_ms=2000 hold_ms=0 after_ms duration_ms
    after_ms=$((4 * INTERVAL_MS + 3000))
    if [ "$kind" = partition ]; then
        hold_ms=$((4 * INTERVAL_MS + 2000))
        [ "$hold_ms" -ge 3000 ] || hold_ms=3000
        after_ms=$((hold_ms + 4000))
    fi
    duration_ms=$((fault_ms + after_ms))
    local outfile
    outfile="$STATE_DIR/probe-$kind-$(date +%Y%m%d-%H%M%S)-$$.out"
    say "drill $kind: $holder holds the VIP ($(impl_of "$holder"), interval $INTERVAL); probing for $((duration_ms / 1000)).$((duration_ms % 1000 / 100)) s"
    ip netns exec "$CLIENT_NS" "$PROBE" "$VIP:$PORT" --interval 10ms --timeout "$probe_timeout" \
        --duration "${duration_ms}ms" >"$outfile" 2>&1 </dev/null &
    local probe_pid=$!
    echo "$probe_pid" >"$STATE_DIR/probe.pid"
    local t0
    t0="$(now_ms)"
    sleep "$((fault_ms / 1000)).$((fault_ms % 1000 / 100))"
    case "$kind" in
    crash)
        kill_node "$holder" KILL
        say "+$(($(now_ms) - t0)) ms: SIGKILL $holder"
        ;;
    term)
        kill_node "$holder" TERM
        say "+$(($(now_ms) - t0)) ms: SIGTERM $holder (planned handover)"
        ;;
    partition)
        cmd_partition "$holder" >/dev/null
        say "+$(($(now_ms) - t0)) ms: isolated $holder at the bridge"
        sleep "$((hold_ms / 1000)).$((hold_ms % 1000 / 100))"
        cmd_heal >/dev/null
        say "+$(($(now_ms) - t0)) ms: healed"
        ;;
    esac
    # The probe stops by itself at its --duration; never wait much longer than that.
    for _ in $(seq $(((duration_ms + 10000) / 200))); do
        kill -0 "$probe_pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$probe_pid" 2>/dev/null; then
        warn "the probe overran its duration; stopping it"
        kill -TERM "$probe_pid" 2>/dev/null || true
    fi
    wait "$probe_pid" 2>/dev/null || true
    rm -f "$STATE_DIR/probe.pid"

    echo "--- probe (client $CLIENT_IP -> $VIP:$PORT every 10 ms, timeout $probe_timeout) ---"
    cat "$outfile"
    echo "---"
    local json gap changes answered probes path first
    json="$(grep -a '^{' "$outfile" | tail -n 1 || true)"
    [ -n "$json" ] || die "the probe printed no summary (output above, $outfile)"
    gap="$(sed -n 's/.*"longest_gap_ms":\([0-9.]*\).*/\1/p' <<<"$json")"
    changes="$(sed -n 's/.*"changes":\([0-9]*\).*/\1/p' <<<"$json")"
    answered="$(sed -n 's/.*"answered":\([0-9]*\).*/\1/p' <<<"$json")"
    probes="$(sed -n 's/.*"probes":\([0-9]*\).*/\1/p' <<<"$json")"
    path="$(awk '$3 == "->" && $2 != "-" {printf "%s%s->%s", sep, $2, $4; sep = ","}' "$outfile")"
    first="$(awk '$3 == "->" && $2 != "-" {print $4; exit}' "$outfile")"
    echo "client saw: answerer changes ${path:-none} ($changes), longest gap without an answer ${gap} ms, $answered of $probes probes answered"
    echo "RESULT drill=$kind impl=$(lab_impl) interval=$INTERVAL holder=$holder to=${first:--} changes=$changes path=${path:--} longest_gap_ms=$gap answered=$answered probes=$probes"

    # Put the lab back as it was.
    if [ "$kind" != partition ]; then
        for _ in $(seq 50); do
            node_alive "$holder" || break
            sleep 0.1
        done
        node_alive "$holder" && kill_node "$holder" KILL
        cmd_start "$holder" >/dev/null
    fi
    local t1
    t1="$(now_ms)"
    if settle $((INTERVAL_MS * 8 / 1000 + 15)) "$holder" >/dev/null; then
        say "restored: $holder holds the VIP again and answers the client ($(($(now_ms) - t1)) ms after the drill)"
    else
        warn "after the drill, $holder did not get the VIP back: holders now '$(holders)' (see '$ME --name $NAME status')"
    fi
}

cmd_logs() {
    [ $# -eq 1 ] || die "logs: name one node, e.g. '$ME logs n1'"
    load_state
    check_node "$1"
    local f
    for f in "$STATE_DIR/$1.keepalived.log" "$STATE_DIR/$1.log" "$STATE_DIR/$1.who.log"; do
        [ -f "$f" ] || continue
        echo "==> $f <=="
        cat "$f"
    done
}

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
