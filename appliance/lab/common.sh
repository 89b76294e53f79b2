# shellcheck shell=bash disable=SC2153 # the globals come from lab.sh and lab.env
# appliance/lab.sh's helpers: names, PIDs and processes in namespaces, who holds the VIP,
# the binaries. Sourced by lab.sh after it has read its arguments (NAME, STATE_DIR, PREFIX).


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
    ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$PREFIX-(hub|client|n[0-9]+|witness|web[0-9]+)$" || true
}

now_ms() { date +%s%3N; }

priority_of() { # priority_of K
    if [ "$1" -eq 1 ]; then echo 150; else echo $((100 - 10 * ($1 - 2))); fi
}

# The lab's VIP family (IPV6 from lab.env): the VIP, how `ip addr` names it, the probe's
# target and the listeners' wildcard.
# shellcheck disable=SC2034 # read by vrrp.sh and commands.sh
use_family() {
    if [ "${IPV6:-0}" = 1 ]; then
        VIP="$VIP6" VIP_PREFIX=64 INET=inet6 VIP_TARGET="[$VIP6]:$PORT" ANY="[::]"
    else
        INET=inet VIP_TARGET="$VIP:$PORT" ANY=0.0.0.0
    fi
}

load_state() {
    [ -f "$STATE_DIR/lab.env" ] || die "lab '$NAME' is not up (no $STATE_DIR/lab.env); start it with: $ME --name $NAME up"
    # shellcheck source=/dev/null
    . "$STATE_DIR/lab.env"
    use_family
    ns_exists "$HUB" || die "lab '$NAME' has state in $STATE_DIR but no namespace $HUB: run '$ME --name $NAME down' then 'up'"
}

check_node() { # check_node NODE → exits unless NODE is n1..nN (or a cluster lab host)
    if [ "$MODE" = cluster ] && is_cluster_extra "$1"; then
        return 0
    fi
    if ! [[ "$1" =~ ^n([0-9]+)$ ]] || [ "${BASH_REMATCH[1]}" -lt 1 ] || [ "${BASH_REMATCH[1]}" -gt "$NODES" ]; then
        if [ "$MODE" = cluster ]; then
            die "no node '$1' in lab '$NAME' (n1, n2, ${CLUSTER_EXTRAS// /, })"
        fi
        die "no node '$1' in lab '$NAME' (nodes n1..n$NODES)"
    fi
}

# What runs on a host of the lab, for messages.
host_kind() { # host_kind NODE
    case "$1" in
    witness) echo "tandemd witness" ;;
    web[0-9]*) echo "HTTP backend, socat" ;;
    *) impl_of "$1" ;;
    esac
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

has_vip() { # has_vip NODE: the VIP is on the node's eth0
    local addrs
    addrs="$(ip -n "$(ns_of "$1")" -o addr show dev eth0 2>/dev/null || true)"
    grep -q " $INET $VIP/" <<<"$addrs"
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
    ip -n "$(ns_of "$1")" -o addr show dev eth0 2>/dev/null |
        awk -v vip="$VIP/" -v inet="$INET" '{for (i = 1; i <= NF; i++) if ($i == inet && index($(i+1), vip) == 1) f = 1; if (f) {for (i = 1; i <= NF; i++) if ($i == "valid_lft") {print $(i+1); exit}}}'
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


# ---------------------------------------------------------------- building the lab

# The state dir as `up` wants it: what an earlier lab of this name left (PIDs, logs,
# configs, sockets, the cluster's PKI and Raft data) goes; anything else stays.
fresh_state_dir() {
    mkdir -p "$STATE_DIR"
    find "$STATE_DIR" -maxdepth 1 -type f \( -name '*.pid' -o -name '*.log' -o -name '*.toml' \
        -o -name '*.conf' -o -name 'probe-*.out' -o -name 'lab.env' -o -name '*.sock' \
        -o -name 'web-backend.sh' -o -name 'drill-*.out' \) -delete
    # Only these names: the state dir may be one the user picked.
    rm -rf "$STATE_DIR/pki" "$STATE_DIR/n1-data" "$STATE_DIR/n2-data" "$STATE_DIR/witness-data"
}

# Whatever fails between up_guard and up_done (set -e, die), leave nothing behind.
up_guard() {
    UP_DONE=0
    trap 'if [ "$UP_DONE" = 0 ]; then warn "up failed; cleaning up"; cmd_down >/dev/null 2>&1 || true; fi' EXIT
}

up_done() {
    UP_DONE=1
    trap - EXIT
}

add_hub() { # the hub namespace and its bridge
    ip netns add "$HUB"
    ip -n "$HUB" link set lo up
    ip -n "$HUB" link add br0 type bridge
    ip -n "$HUB" link set br0 up
}

add_host() { # add_host NAME IP MAC: namespace PREFIX-NAME, eth0 on the bridge (port vNAME)
    local ns="$PREFIX-$1" port="v$1"
    ip netns add "$ns"
    ip -n "$HUB" link add "$port" type veth peer name eth0 netns "$ns"
    ip -n "$HUB" link set "$port" master br0 up
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 address "$3"
    ip -n "$ns" addr add "$2/24" dev eth0
    # The IPv6 twin: 2001:db8:51::N (N = the last octet, in hex), usable at once (nodad).
    ip -n "$ns" addr add "$IPV6_PREFIX:$(printf '%x' "${2##*.}")/64" dev eth0 nodad
    ip -n "$ns" link set eth0 up
}
