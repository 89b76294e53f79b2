#!/usr/bin/env bash
# Cluster failover benchmark: a fenced tandem cluster (Raft leases, a witness) beside a
# keepalived pair at the same VRRP settings, as a client and the nodes' kernels see it. A
# benchmark for people to read, not a test: it never fails on a number, only when a lab
# cannot be built.
#
# Usage: bench/cluster.sh [--rounds R] [--name cbench] [--interval 200ms]
#                         [--partition 10] [--probe-timeout 30ms]
#
#   --rounds R       rounds (default 5); each round builds a fresh tandem lab and a fresh
#                    keepalived lab (alternating which goes first) and runs every
#                    measurement once in each
#   --name NAME      lab name prefix (default cbench): the labs are NAMEt and NAMEk of
#                    appliance/lab.sh, state in /run/tandem-lab/NAMEt and NAMEk
#   --interval I     VRRP advert interval of both implementations (default 200ms, the
#                    cluster lab's)
#   --partition S    seconds each partition lasts (default 10)
#   --impair S       seconds each impairment (loss, one-way cut) lasts (default 15)
#   --probe-timeout  the client probe's timeout per connection (default 30ms)
#   --only LIST      comma-separated measurements to run (default all): crash, move, pair,
#                    isolate, loss10, loss30, deaf, config
#
# Labs (appliance/lab.sh): tandem = `up --cluster`: n1 (priority 150) and n2 (100) forward
# and speak VRRP under Raft leases (fencing = "raft", default lease timing), the witness is
# the third voter; keepalived = `up --nodes 2 --keepalived n1 --keepalived n2`: keepalived
# 2.x (vrrp_version 3) on both nodes with the same VIP 198.51.100.100/24, VRID 51,
# priorities, advert interval, preemption and gratuitous-ARP refresh; there tandemd runs
# without VRRP as the forwarder, so the data path is the same. keepalived has no lease and
# no witness. Every node forwards :7000 to a backend answering the node's name.
#
# Measurements, each round, for both (n1 holds the VIP before each one):
#   crash    SIGKILL of n1 (all its processes, by PID): the client-seen gap (tandem-probe in
#            the client: a TCP connection to VIP:7000 every 10 ms), the time until n2 holds
#            the VIP, the time until the VIP is gone from n1's interface; n1 restarted
#   move     planned move: tandem `tandemctl vip move front n2` (back: `--auto`);
#            keepalived: SIGTERM of n1's keepalived (priority-0 advert; the forwarder
#            stays), restarted afterwards. Client gap, time until n2 holds
#   pair     n1 and n2 cut from each other at the bridge (`lab.sh partition --between n1
#            n2`; in the tandem lab both still reach the witness) for --partition seconds,
#            then healed: the time both held the VIP during the cut and in the 5 s after
#            the heal, and what the client saw
#   isolate  the holder cut from both peers while the client still reaches it (tandem:
#            `--between n1 n2 witness`; keepalived has no third peer, so the same cut as
#            pair): dual-holding time, when n1 dropped and n2 took the VIP, the client
#   loss10, loss30  10 % / 30 % of the packets between the nodes dropped at random, both
#            ways (tandem: n1, n2, witness) for --impair seconds: the share of time with
#            exactly one holder, dual-holding seconds, what the client saw
#   deaf     n1 (the holder) hears nothing from its peers but still sends, for --impair
#            seconds: the same figures and when n2 took over
#   config   (tandem only) `tandemctl config apply` of a changed config (version + 1) on
#            n1; three pollers read GET /v1/cluster of n1, n2 and the witness every 10 ms
#            and note when each shows the new version (running_config_version on the
#            forwarding nodes, the replicated config_version on the witness); also the
#            "replicated config applied" log timestamps of n1 and n2
# Holders are sampled every 10 ms from both nodes' /proc/PID/net/fib_trie (a process
# inside each node namespace; no fork per sample), as the Rust drills do.
#
# Runtime: about R x (28 s + 2 x --partition + 3 x (--impair + 25 s)) x 2: ~17 minutes
# for R = 3 with the defaults, ~28 for R = 5.
#
# Results: a table on stdout and as Markdown in bench/results/cluster-<timestamp>.md with
# every run's figures; logs, probe and sampler outputs in bench/results/cluster-<timestamp>/.
#
# Needs: root, iproute2, nftables, socat, curl, keepalived; tandemd, tandemctl and
# tandem-probe (see appliance/lab.sh for where it looks; TANDEMD=... to choose).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
LAB="$ROOT/appliance/lab.sh"

ROUNDS=5
NAME=cbench
INTERVAL=200ms
PARTITION_S=10
IMPAIR_S=15
PROBE_TIMEOUT=30ms
ONLY=crash,move,pair,isolate,loss10,loss30,deaf,config
AFTER_HEAL_S=5
VIP=198.51.100.100
PORT=7000

while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) ROUNDS="${2:?}"; shift 2 ;;
    --name) NAME="${2:?}"; shift 2 ;;
    --interval) INTERVAL="${2:?}"; shift 2 ;;
    --partition) PARTITION_S="${2:?}"; shift 2 ;;
    --impair) IMPAIR_S="${2:?}"; shift 2 ;;
    --probe-timeout) PROBE_TIMEOUT="${2:?}"; shift 2 ;;
    --only) ONLY="${2:?}"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
if ! is_uint "$ROUNDS" || [ "$ROUNDS" -lt 1 ] || [ "$ROUNDS" -gt 50 ]; then die "--rounds must be 1..50"; fi
if ! is_uint "$PARTITION_S" || [ "$PARTITION_S" -lt 3 ] || [ "$PARTITION_S" -gt 120 ]; then die "--partition must be 3..120 seconds"; fi
[[ "$NAME" =~ ^[A-Za-z0-9_-]{1,20}$ ]] || die "--name: 1..20 letters, digits, '-' or '_'"
[[ "$INTERVAL" =~ ^[0-9]+(ms|s)$ ]] || die "--interval: a value like 200ms or 1s, not '$INTERVAL'"
[[ "$PROBE_TIMEOUT" =~ ^[0-9]+ms$ ]] || die "--probe-timeout: a value like 30ms, not '$PROBE_TIMEOUT'"
for m in ${ONLY//,/ }; do
    case "$m" in crash | move | pair | isolate | loss10 | loss30 | deaf | config) ;; *) die "--only: unknown measurement '$m'" ;; esac
done
wanted() { [[ ",$ONLY," == *",$1,"* ]]; }
[ "$(id -u)" -eq 0 ] || die "needs root (appliance/lab.sh builds network namespaces)"
require_tools keepalived:keepalived curl:curl ip:iproute2 nft:nftables socat:socat
[ -x "$LAB" ] || die "$LAB is missing or not executable"

per_round=$(((28 + 2 * PARTITION_S + 3 * (IMPAIR_S + 25)) * 2 + 2))
echo "$BENCH_NAME: $ROUNDS round(s) of ${ONLY//,/, } (tandem and keepalived; config: tandem only);"
echo "  roughly $ROUNDS x ~${per_round} s = ~$((ROUNDS * per_round / 60 + 1)) min."
if pgrep -x cargo >/dev/null 2>&1 || pgrep -x rustc >/dev/null 2>&1 || pgrep -x wrk >/dev/null 2>&1; then
    echo "  note: a build or another benchmark is running on this machine; figures may be noisy." >&2
fi

STAMP="$(date +%Y%m%d-%H%M%S)"
RESULTS="$ROOT/bench/results"
LOGS="$RESULTS/cluster-$STAMP"
mkdir -p "$LOGS"
DATA="$LOGS/runs.tsv"
printf 'round\timpl\tmeasure\tmetric\tvalue\n' >"$DATA"
INFO="$LOGS/runs-info.tsv" # per-run text (answerer paths, notes) for the Markdown
printf 'round\timpl\tmeasure\tinfo\n' >"$INFO"
BENCH_LOG="$LOGS/bench.log"

# A FIFO nobody writes to: `read -t` on it is a sleep without a fork (10 ms ticks).
TICK="$LOGS/.tick"
mkfifo "$TICK"
exec {TICK_FD}<>"$TICK"
tick() { read -r -t "${1:-0.01}" -u "$TICK_FD" _ || true; }
now_us() { echo "${EPOCHREALTIME/./}"; }

BG_PIDS=() # samplers, probes, pollers under way (ended by PID on exit)
LABS_UP=()

bench_cleanup() {
    local rc=$? p n
    trap - EXIT INT TERM
    for p in "${BG_PIDS[@]}"; do
        if kill -0 "$p" 2>/dev/null; then kill -TERM "$p" 2>/dev/null || true; fi
    done
    for n in "${LABS_UP[@]}"; do
        "$LAB" --name "$n" --state-dir "/run/tandem-lab/$n" down >>"$BENCH_LOG" 2>&1 || warn "could not take lab $n down (appliance/lab.sh --name $n down)"
    done
    exec {TICK_FD}<&- 2>/dev/null || true
    rm -f "$TICK"
    exit "$rc"
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forget_bg() { # forget_bg PID
    local p keep=()
    for p in "${BG_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    BG_PIDS=("${keep[@]}")
}

wait_bg() { # wait_bg PID LIMIT_S: wait for a background job, TERM it after LIMIT_S
    local pid="$1" limit="$2" i
    for ((i = 0; i < limit * 20; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        tick 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "background job $pid overran ${limit}s; stopping it"
        kill -TERM "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    forget_bg "$pid"
}

rec() { printf '%s\t%s\t%s\t%s\t%s\n' "$ROUND" "$IMPL" "$1" "$2" "${3:--}" >>"$DATA"; }
rec_info() { printf '%s\t%s\t%s\t%s\n' "$ROUND" "$IMPL" "$1" "$2" >>"$INFO"; }
say() { echo "    $*"; }

# ---------------------------------------------------------------- the current lab

IMPL=""
LAB_NAME=""
STATE=""
CLIENT_NS=""
ANCHOR_n1=""
ANCHOR_n2=""
PROBE_BIN=""
CTL_BIN=""
TANDEMD_USED=""

lab() { "$LAB" --name "$LAB_NAME" --state-dir "$STATE" "$@"; }

use_lab() { # use_lab tandem|keepalived
    IMPL="$1"
    if [ "$IMPL" = tandem ]; then LAB_NAME="${NAME}t"; else LAB_NAME="${NAME}k"; fi
    STATE="/run/tandem-lab/$LAB_NAME"
    CLIENT_NS="tlab-$LAB_NAME-client"
}

lab_env() { # lab_env VAR: a value from the lab's lab.env
    (
        # shellcheck source=/dev/null
        . "$STATE/lab.env"
        echo "${!1:-}"
    )
}

pid_in() { # pid_in NODE FILE: the PID in the lab's pid file if it lives in NODE's namespace
    local pid=""
    [ -f "$STATE/$2" ] && pid="$(tr -dc '0-9' <"$STATE/$2")"
    [ -n "$pid" ] && [ "$(ip netns identify "$pid" 2>/dev/null || true)" = "tlab-$LAB_NAME-$1" ] && echo "$pid"
    return 0
}

save_logs() { # save_logs TAG
    mkdir -p "$LOGS/$1"
    cp "$STATE"/*.log "$STATE"/*.conf "$STATE"/*.toml "$LOGS/$1/" 2>/dev/null || true
}

lab_down() {
    local keep=() n
    lab down >>"$BENCH_LOG" 2>&1 || warn "lab $LAB_NAME: down failed (see $BENCH_LOG)"
    for n in "${LABS_UP[@]}"; do [ "$n" = "$LAB_NAME" ] || keep+=("$n"); done
    LABS_UP=("${keep[@]}")
}

lab_up() { # lab_up TAG: build the current lab; dies when it cannot be built
    local tag="$1" out="$LOGS/$1.up.out"
    lab down >>"$BENCH_LOG" 2>&1 || true
    LABS_UP+=("$LAB_NAME")
    local args=(up --interval "$INTERVAL")
    if [ "$IMPL" = tandem ]; then args+=(--cluster); else args+=(--nodes 2 --keepalived n1 --keepalived n2); fi
    if ! lab "${args[@]}" >"$out" 2>&1; then
        cat "$out" >&2
        save_logs "$tag"
        die "lab up failed ($IMPL); output in $out, logs in $LOGS/$tag"
    fi
    if [ -z "$TANDEMD_USED" ]; then
        TANDEMD_USED="$(grep -m1 '^appliance/lab.sh: tandemd: ' "$out" | sed 's/^appliance\/lab.sh: tandemd: //' || true)"
        if grep 'may be stale' "$out" >&2; then
            TANDEMD_USED+="; **lab.sh warned that it is older than the sources** ($(grep -m1 -o 'e\.g\. [^)]*' "$out" || true))"
        fi
    fi
    PROBE_BIN="$(lab_env PROBE)"
    [ -x "$PROBE_BIN" ] || die "no tandem-probe binary (cargo build --release --bins, or TANDEM_PROBE=...)"
    HOLDERS_BIN="${TANDEM_HOLDERS:-$(dirname "$PROBE_BIN")/tandem-holders}"
    [ -x "$HOLDERS_BIN" ] || die "no tandem-holders binary beside $PROBE_BIN (cargo build --release --bins, or TANDEM_HOLDERS=...)"
    CTL_BIN="$(lab_env TANDEMCTL)"
    # Processes that live as long as the lab, one in each node's namespace (the who-am-I
    # backends): their /proc/PID/net/fib_trie is the node's routing view.
    ANCHOR_n1="$(pid_in n1 n1.who.pid)"
    ANCHOR_n2="$(pid_in n2 n2.who.pid)"
    if [ -z "$ANCHOR_n1" ] || [ -z "$ANCHOR_n2" ]; then die "lab $LAB_NAME: no who-am-I backend process in n1 or n2"; fi
    wait_ready 40 || {
        save_logs "$tag"
        die "lab $LAB_NAME ($IMPL) came up but n1 does not hold the VIP answering the client (see $out)"
    }
}

# Rebuilds the lab when a measurement left it broken (the next measurement needs n1
# holding the VIP); a lab that cannot be built again ends the run.
ensure_ready() { # ensure_ready TAG
    wait_ready 40 && return 0
    warn "$IMPL lab: n1 does not hold the VIP answering the client 40 s after $1 (holders: $(holders_now)); rebuilding the lab"
    save_logs "$1-broken"
    lab_down
    lab_up "$1-rebuild"
}

holds() { # holds NODE: the VIP is a local address in NODE's namespace (fib_trie, no fork)
    local anchor="ANCHOR_$1" txt=""
    IFS= read -r -d '' txt <"/proc/${!anchor}/net/fib_trie" 2>/dev/null || true
    [[ "$txt" == *"|-- $VIP"$'\n'* ]]
}

holders_now() {
    local h=""
    holds n1 && h="n1"
    holds n2 && h="${h:+$h }n2"
    echo "${h:-none}"
}

client_ask() { # one connection from the client to VIP:7000: the answering node's name
    timeout 2 ip netns exec "$CLIENT_NS" bash -c "exec 3<>/dev/tcp/$VIP/$PORT && head -n 1 <&3" 2>/dev/null | tr -d '\r' || true
}

ctl() { # ctl NODE ARGS...: tandemctl on a cluster member's admin socket
    local n="$1"
    shift
    timeout 20 "$CTL_BIN" --socket "$STATE/$n.sock" "$@"
}

# A member that sees the whole cluster: a leader, three voters, and (forwarding nodes) the
# replicated config running (as vagrant/drills/run.sh checks it).
cluster_whole_on() { # cluster_whole_on NODE
    local out
    out="$(ctl "$1" cluster status 2>/dev/null)" || return 1
    grep -Eq '^node .*: (Leader|Follower), .* leader [0-9]+,' <<<"$(head -n 1 <<<"$out")" || return 1
    [ "$(awk '$1 ~ /^[0-9]+$/ && $3 == "yes"' <<<"$out" | wc -l)" -eq 3 ] || return 1
    [ "$1" = witness ] && return 0
    awk '/^config:/ { gsub(",", ""); exit !($4 != "-" && $4 == $7) }' <<<"$out"
}

wait_ready() { # wait_ready LIMIT_S: n1 alone holds the VIP, answers the client; cluster whole
    local limit="$1" t0 n ok
    t0="$(date +%s)"
    while [ $(($(date +%s) - t0)) -lt "$limit" ]; do
        if holds n1 && ! holds n2 && [ "$(client_ask)" = n1 ]; then
            ok=1
            if [ "$IMPL" = tandem ]; then
                for n in n1 n2 witness; do cluster_whole_on "$n" || { ok=0; break; }; done
            fi
            # Settled: the VIP stays put for half a second.
            if [ "$ok" = 1 ]; then
                tick 0.5
                holds n1 && ! holds n2 && return 0
            fi
        fi
        tick 0.2
    done
    return 1
}

wait_holds() { # wait_holds NODE LIMIT_MS: until NODE holds the VIP (10 ms polls)
    local i
    for ((i = 0; i < $2 / 10; i++)); do
        holds "$1" && return 0
        tick
    done
    return 1
}

# ---------------------------------------------------------------- sampler and probe

SAMPLER_PID=""
SAMPLER_OUT=""
SAMPLER_STOP=""

# Every 10 ms: does n1 / n2 hold the VIP? tandem-holders (crates/tandemd/src/bin) prints
# one line "T_US N1 N2" per change (and the first sample), then "end T_US SAMPLES
# DUAL_SAMPLES". A node holds when the address is local AND tandem's kernel fence (if the
# node has one) lets the VIP through: a SIGKILLed holder's address outlives its lease, but
# its fence silences it within milliseconds. Bounded by MAX_S seconds and a stop file.
sampler() { # sampler STOP_FILE MAX_S
    "$HOLDERS_BIN" "$VIP" --netns "/proc/$ANCHOR_n1/ns/net" --netns "/proc/$ANCHOR_n2/ns/net" \
        --interval 10ms --max "${2}s" --stop "$1"
}

start_sampler() { # start_sampler TAG MAX_S
    SAMPLER_OUT="$LOGS/$1.holders"
    SAMPLER_STOP="$LOGS/$1.holders.stop"
    rm -f "$SAMPLER_STOP"
    sampler "$SAMPLER_STOP" "$2" >"$SAMPLER_OUT" 2>&1 &
    SAMPLER_PID=$!
    BG_PIDS+=("$SAMPLER_PID")
}

stop_sampler() {
    touch "$SAMPLER_STOP"
    wait_bg "$SAMPLER_PID" 5
    rm -f "$SAMPLER_STOP"
}

# ms from FROM_US until column COL (n1 or n2) of the sampler's output is VAL (0 if it is
# already at FROM_US); "-" if never.
first_state() { # first_state FILE FROM_US NODE VAL
    awk -v from="$2" -v col="$([ "$3" = n1 ] && echo 2 || echo 3)" -v val="$4" '
        $1 == "end" { exit }
        $1 <= from { cur = $col; next }
        cur == val { print 0; found = 1; exit }
        $col == val { printf "%.0f\n", ($1 - from) / 1000; found = 1; exit }
        { cur = $col }
        END { if (!found) print (cur == val ? 0 : "-") }
    ' "$1"
}

# Seconds both held the VIP between FROM_US and TO_US (state held from one sample line to
# the next; resolution one sample, about 10 ms).
dual_s() { # dual_s FILE FROM_US TO_US
    awk -v from="$2" -v to="$3" '
        $1 == "end" { endt = $2; next }
        { n++; t[n] = $1; d[n] = ($2 == 1 && $3 == 1) }
        END {
            total = 0
            for (i = 1; i <= n; i++) {
                s = t[i]; e = (i < n) ? t[i + 1] : endt
                if (!d[i]) continue
                lo = (s > from) ? s : from; hi = (e < to) ? e : to
                if (hi > lo) total += hi - lo
            }
            printf "%.2f\n", total / 1e6
        }' "$1"
}

# Seconds in [FROM_US, TO_US] with exactly one holder, as a share (%) of that window.
one_pct() { # one_pct FILE FROM_US TO_US
    awk -v from="$2" -v to="$3" '
        $1 == "end" { endt = $2; next }
        { n++; t[n] = $1; d[n] = ($2 + $3 == 1) }
        END {
            total = 0
            for (i = 1; i <= n; i++) {
                s = t[i]; e = (i < n) ? t[i + 1] : endt
                if (!d[i]) continue
                lo = (s > from) ? s : from; hi = (e < to) ? e : to
                if (hi > lo) total += hi - lo
            }
            if (to > from) printf "%.1f\n", total * 100 / (to - from); else print "-"
        }' "$1"
}

PROBE_PID=""
PROBE_OUT=""

start_probe() { # start_probe TAG DURATION_MS [STOP_AFTER_CHANGES]
    PROBE_OUT="$LOGS/$1.probe"
    ip netns exec "$CLIENT_NS" "$PROBE_BIN" "$VIP:$PORT" --interval 10ms --timeout "$PROBE_TIMEOUT" \
        --duration "${2}ms" --stop-after-changes "${3:-0}" >"$PROBE_OUT" 2>&1 </dev/null &
    PROBE_PID=$!
    BG_PIDS+=("$PROBE_PID")
}

wait_probe() { # wait_probe LIMIT_S
    wait_bg "$PROBE_PID" "$1"
}

probe_json() { # probe_json KEY: a field of the probe's summary line
    grep -a '^{' "$PROBE_OUT" | tail -n 1 | sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"
}

probe_path() { # the answerers in order, e.g. n1->n2->n1
    awk '$3 == "->" { if ($2 == "-") p = $4; else p = p "->" $4 } END { print (p == "" ? "-" : p) }' "$PROBE_OUT"
}

probe_first_to() { awk '$3 == "->" && $2 != "-" { print $4; exit }' "$PROBE_OUT"; }

# ---------------------------------------------------------------- faults

# All live processes of NODE's VRRP speaker and forwarder (the lab's pid files).
node_pids() { # node_pids NODE
    local f p
    for f in "$1.ka-vrrp.pid" "$1.keepalived.pid" "$1.ka-checkers.pid" "$1.tandemd.pid"; do
        p="$(pid_in "$1" "$f")"
        [ -n "$p" ] && echo "$p"
    done
    return 0
}

wait_gone() { # wait_gone LIMIT_S PID...: until none of the PIDs lives
    local limit="$1" i p left
    shift
    for ((i = 0; i < limit * 20; i++)); do
        left=0
        for p in "$@"; do kill -0 "$p" 2>/dev/null && left=1; done
        [ "$left" = 0 ] && return 0
        tick 0.05
    done
    return 1
}

# ---------------------------------------------------------------- measurements

m_crash() {
    local tag="r$ROUND-$IMPL-crash" pids t_fault gap took gone
    # shellcheck disable=SC2207 # PIDs are words
    pids=($(node_pids n1))
    [ "${#pids[@]}" -gt 0 ] || { warn "$tag: n1 has no live process"; return 0; }
    start_sampler "$tag" 30
    start_probe "$tag" 12000 1
    tick 2
    t_fault="$(now_us)"
    # As appliance/lab.sh kill does: stop first, so that no process of the node reacts to
    # another's death (keepalived's VRRP child would advertise priority 0), then KILL.
    kill -STOP "${pids[@]}" 2>/dev/null || true
    kill -KILL "${pids[@]}" 2>/dev/null || true
    wait_holds n2 10000 || true
    tick 0.3
    wait_probe 15
    stop_sampler
    gap="$(probe_json longest_gap_ms)"
    [ "$(probe_first_to)" = n2 ] || gap="-"
    took="$(first_state "$SAMPLER_OUT" "$t_fault" n2 1)"
    gone="$(first_state "$SAMPLER_OUT" "$t_fault" n1 0)"
    rec crash gap_ms "$gap"
    rec crash takeover_ms "$took"
    rec crash gone_ms "$gone"
    rec_info crash "client $(probe_path); holders at the end of the window: $(holders_now)"
    say "crash: client gap ${gap} ms; n2 holds ${took} ms after the kill; VIP gone from n1 after ${gone} ms ($([ "$gone" = - ] && echo 'still there: no lifetime' || echo 'address lifetime'))"
    wait_gone 5 "${pids[@]}" || warn "$tag: n1's processes did not die"
    lab start n1 >>"$BENCH_LOG" 2>&1 || warn "$tag: lab start n1 failed (see $BENCH_LOG)"
    ensure_ready "$tag"
}

m_move() {
    local tag="r$ROUND-$IMPL-move" t_fault gap took out ka="" t_cmd
    if [ "$IMPL" = keepalived ]; then
        ka="$(pid_in n1 n1.keepalived.pid)"
        [ -n "$ka" ] || { warn "$tag: no keepalived on n1"; return 0; }
    fi
    start_sampler "$tag" 30
    start_probe "$tag" 8000 1
    tick 2
    t_fault="$(now_us)"
    if [ "$IMPL" = tandem ]; then
        out="$(ctl n1 vip move front n2 2>&1)" || warn "$tag: vip move failed: $out"
        t_cmd=$((($(now_us) - t_fault) / 1000))
        out="tandemctl answered in ${t_cmd} ms: $out"
    else
        # A planned stop of keepalived only: its VRRP child advertises priority 0 and
        # removes the VIP. The forwarder (tandemd) stays, as tandem's does.
        kill -TERM "$ka"
        out="SIGTERM to keepalived $ka"
    fi
    wait_holds n2 6000 || true
    tick 0.3
    wait_probe 12
    stop_sampler
    gap="$(probe_json longest_gap_ms)"
    [ "$(probe_first_to)" = n2 ] || gap="-"
    took="$(first_state "$SAMPLER_OUT" "$t_fault" n2 1)"
    rec move gap_ms "$gap"
    rec move takeover_ms "$took"
    rec_info move "$out; client $(probe_path)"
    say "move: client gap ${gap} ms; n2 holds ${took} ms after the $([ "$IMPL" = tandem ] && echo command || echo SIGTERM)"
    # Back to n1.
    if [ "$IMPL" = tandem ]; then
        out="$(ctl n2 vip move front --auto 2>&1)" || warn "$tag: vip move --auto failed: $out"
    else
        wait_gone 10 "$ka" || warn "$tag: keepalived $ka did not exit within 10 s of SIGTERM"
        # The forwarder still runs; lab.sh starts a node only when none of it does.
        lab kill n1 --signal KILL >>"$BENCH_LOG" 2>&1 || true
        wait_gone 5 "$(pid_in n1 n1.tandemd.pid)" || true
        lab start n1 >>"$BENCH_LOG" 2>&1 || warn "$tag: lab start n1 failed (see $BENCH_LOG)"
    fi
    ensure_ready "$tag"
}

m_cut() { # m_cut pair|isolate
    local kind="$1" tag="r$ROUND-$IMPL-$1" peers=(n2) t_cut t_heal t_end
    if [ "$kind" = isolate ] && [ "$IMPL" = tandem ]; then peers=(n2 witness); fi
    local leader=""
    if [ "$IMPL" = tandem ]; then
        # Which member leads Raft matters (n2 leading is the hard case: n1 renews through
        # the witness); note it.
        leader="$(ctl n1 cluster status 2>/dev/null | head -n 1 | sed -n 's/.* leader \([0-9]*\),.*/\1/p')"
        case "$leader" in 1) leader=n1 ;; 2) leader=n2 ;; 3) leader=witness ;; *) leader="?" ;; esac
        leader="Raft leader before the cut: $leader; "
    fi
    start_sampler "$tag" $((PARTITION_S + AFTER_HEAL_S + 20))
    start_probe "$tag" $(((2 + PARTITION_S + AFTER_HEAL_S) * 1000))
    tick 2
    lab partition --between n1 "${peers[@]}" >>"$BENCH_LOG" 2>&1 || warn "$tag: partition failed (see $BENCH_LOG)"
    t_cut="$(now_us)"
    tick "$PARTITION_S"
    lab heal >>"$BENCH_LOG" 2>&1 || warn "$tag: heal failed (see $BENCH_LOG)"
    t_heal="$(now_us)"
    wait_probe $((AFTER_HEAL_S + 10))
    t_end="$(now_us)"
    stop_sampler
    local during after took dropped answered probes pct gap samples dual_samples
    during="$(dual_s "$SAMPLER_OUT" "$t_cut" "$t_heal")"
    after="$(dual_s "$SAMPLER_OUT" "$t_heal" "$t_end")"
    took="$(first_state "$SAMPLER_OUT" "$t_cut" n2 1)"
    dropped="$(first_state "$SAMPLER_OUT" "$t_cut" n1 0)"
    answered="$(probe_json answered)"
    probes="$(probe_json probes)"
    pct="$(awk -v a="$answered" -v p="$probes" 'BEGIN { if (p > 0) printf "%.1f\n", a * 100 / p; else print "-" }')"
    gap="$(probe_json longest_gap_ms)"
    read -r _ _ samples dual_samples < <(grep '^end ' "$SAMPLER_OUT" || echo "end - - -")
    rec "$kind" dual_cut_s "$during"
    rec "$kind" dual_heal_s "$after"
    rec "$kind" takeover_ms "$took"
    rec "$kind" drop_ms "$dropped"
    rec "$kind" answered_pct "$pct"
    rec "$kind" gap_ms "$gap"
    rec "$kind" changes "$(probe_json changes)"
    rec_info "$kind" "${leader}cut n1 from ${peers[*]} for ${PARTITION_S}s; both held in $dual_samples of $samples samples; client $(probe_path) ($(probe_json changes) changes, $answered/$probes answered)"
    say "$kind (n1 cut from ${peers[*]}): both held ${during} s during the cut, ${after} s after the heal; n2 held after ${took} ms, n1 dropped after ${dropped} ms; client answered ${pct} %, longest gap ${gap} ms, $(probe_path)"
    ensure_ready "$tag"
}

# Impaired links between the nodes (the client's and the backends' traffic untouched) for
# --impair seconds, then healed: loss10 / loss30 drop 10 % / 30 % of the packets between
# every two nodes at random (tandem: n1, n2 and the witness); deaf: n1 (the holder) hears
# nothing from its peers but still sends (a one-way cut). The share of time with exactly
# one holder during the impairment, dual-holding seconds, when n2 took over, the client.
m_impair() { # m_impair loss10|loss30|deaf
    local kind="$1" tag="r$ROUND-$IMPL-$1" nodes=(n1 n2) t_cut t_heal t_end
    [ "$IMPL" = tandem ] && nodes=(n1 n2 witness)
    start_sampler "$tag" $((IMPAIR_S + AFTER_HEAL_S + 20))
    start_probe "$tag" $(((2 + IMPAIR_S + AFTER_HEAL_S) * 1000))
    tick 2
    case "$kind" in
    loss10) lab partition --loss 10 "${nodes[@]}" ;;
    loss30) lab partition --loss 30 "${nodes[@]}" ;;
    deaf) for n in "${nodes[@]:1}"; do lab partition --one-way "$n" n1 || break; done ;;
    esac >>"$BENCH_LOG" 2>&1 || warn "$tag: impairment failed (see $BENCH_LOG)"
    t_cut="$(now_us)"
    tick "$IMPAIR_S"
    lab heal >>"$BENCH_LOG" 2>&1 || warn "$tag: heal failed (see $BENCH_LOG)"
    t_heal="$(now_us)"
    wait_probe $((AFTER_HEAL_S + 10))
    t_end="$(now_us)"
    stop_sampler
    local held dual took answered probes pct gap
    held="$(one_pct "$SAMPLER_OUT" "$t_cut" "$t_heal")"
    dual="$(dual_s "$SAMPLER_OUT" "$t_cut" "$t_end")"
    took="$(first_state "$SAMPLER_OUT" "$t_cut" n2 1)"
    answered="$(probe_json answered)"
    probes="$(probe_json probes)"
    pct="$(awk -v a="$answered" -v p="$probes" 'BEGIN { if (p > 0) printf "%.1f\n", a * 100 / p; else print "-" }')"
    gap="$(probe_json longest_gap_ms)"
    rec "$kind" held_pct "$held"
    rec "$kind" dual_s "$dual"
    rec "$kind" answered_pct "$pct"
    rec "$kind" gap_ms "$gap"
    rec "$kind" changes "$(probe_json changes)"
    [ "$kind" = deaf ] && rec "$kind" takeover_ms "$took"
    rec_info "$kind" "${nodes[*]} impaired ($kind) for ${IMPAIR_S}s; client $(probe_path)"
    say "$kind: exactly one holder ${held} % of ${IMPAIR_S} s, both held ${dual} s; n2 held after ${took} ms; client answered ${pct} %, longest gap ${gap} ms"
    ensure_ready "$tag"
}

# The version a member shows: running_config_version (forwarding nodes) or the replicated
# config_version (the witness), from GET /v1/cluster on its admin socket (what tandemctl
# cluster status reads). Sets VERSION_SEEN (empty if none); one fork, for curl.
member_version() { # member_version NODE
    local body re='"running_config_version": *([0-9]+)'
    [ "$1" = witness ] && re='"config_version": *([0-9]+)'
    VERSION_SEEN=""
    body="$(curl -s -m 1 --unix-socket "$STATE/$1.sock" http://lab/v1/cluster 2>/dev/null)" || true
    if [[ "$body" =~ $re ]]; then VERSION_SEEN="${BASH_REMATCH[1]}"; fi
    return 0
}

poll_version() { # poll_version NODE VERSION OUT: every 10 ms, at most 10 s; OUT: "SEEN_US PREV_US"
    local i prev="${EPOCHREALTIME/./}"
    for ((i = 0; i < 1000; i++)); do
        member_version "$1"
        if [ -n "$VERSION_SEEN" ] && [ "$VERSION_SEEN" -ge "$2" ]; then
            echo "${EPOCHREALTIME/./} $prev" >"$3"
            return 0
        fi
        prev="${EPOCHREALTIME/./}"
        tick
    done
    echo - >"$3"
}

log_us() { # log_us NODE VERSION: when NODE logged "replicated config applied" for VERSION
    local ts
    ts="$(grep -a "replicated config applied version=$2 " "$STATE/$1.log" | tail -n 1 | sed -e 's/\x1b\[[0-9;]*m//g' | awk '{ print $1 }')"
    [ -n "$ts" ] && date -d "$ts" +%s%6N 2>/dev/null
    return 0
}

m_config() {
    local tag="r$ROUND-$IMPL-config" cur new file n pids=() t0 t1 out v ms all=0 lacking=0
    member_version n1
    cur="$VERSION_SEEN"
    is_uint "$cur" || { warn "$tag: cannot read n1's config version"; return 0; }
    new=$((cur + 1))
    # n1's own file with the version raised and web2's weight changed (1 <-> 2): a pool
    # change every forwarding node applies by hot reload.
    file="$LOGS/$tag.toml"
    awk -v v="$new" -v w=$((2 - new % 2)) '
        /^version = / { print "version = " v; next }
        { print }
        /^id = "web2"$/ { print "weight = " w }' "$STATE/n1.toml" >"$file"
    for n in n1 n2 witness; do
        rm -f "$LOGS/$tag.$n.seen"
        poll_version "$n" "$new" "$LOGS/$tag.$n.seen" &
        pids+=("$!")
        BG_PIDS+=("$!")
    done
    tick 0.3
    t0="$(now_us)"
    out="$(ctl n1 config apply "$file" 2>&1)" || warn "$tag: config apply failed: $out"
    t1="$(now_us)"
    for n in "${pids[@]}"; do wait_bg "$n" 12; done
    rec config commit_ms "$(((t1 - t0) / 1000))"
    local line="" res="" prev
    for n in n1 n2 witness; do
        read -r v prev <"$LOGS/$tag.$n.seen" 2>/dev/null || v="-"
        if is_uint "$v"; then
            ms=$(((v - t0) / 1000))
            [ "$ms" -gt "$all" ] && all="$ms"
            # The poll before the one that saw it ended PREV: the resolution.
            res+=" $n $(((v - prev) / 1000)) ms,"
        else
            ms="-"
            lacking=1
        fi
        rec config "${n}_ms" "$ms"
        line+=" $n ${ms} ms,"
    done
    [ "$lacking" = 1 ] && all="-"
    rec config all_ms "$all"
    for n in n1 n2; do
        v="$(log_us "$n" "$new")"
        if is_uint "$v"; then rec config "${n}_log_ms" "$(((v - t0) / 1000))"; else rec config "${n}_log_ms" -; fi
    done
    rec_info config "version $cur -> $new: $out; time between the last two polls:${res%,}"
    say "config: version $new committed in $(((t1 - t0) / 1000)) ms; seen on${line%,}; all nodes: ${all} ms"
}

# ---------------------------------------------------------------- the rounds

echo "$BENCH_NAME: logs in $LOGS/"
for ROUND in $(seq "$ROUNDS"); do
    if [ $((ROUND % 2)) -eq 1 ]; then impls="tandem keepalived"; else impls="keepalived tandem"; fi
    for impl in $impls; do
        use_lab "$impl"
        echo "--- round $ROUND: $IMPL (lab $LAB_NAME, advert interval $INTERVAL)"
        lab_up "r$ROUND-$IMPL"
        if wanted crash; then m_crash; fi
        if wanted move; then m_move; fi
        if wanted pair; then m_cut pair; fi
        if wanted isolate; then m_cut isolate; fi
        if wanted loss10; then m_impair loss10; fi
        if wanted loss30; then m_impair loss30; fi
        if wanted deaf; then m_impair deaf; fi
        if wanted config && [ "$IMPL" = tandem ]; then m_config; fi
        save_logs "r$ROUND-$IMPL"
        lab_down
    done
done

# ---------------------------------------------------------------- summary

# One row per measurement, metric and implementation: runs with a value, min, median, max.
values_of() { # values_of MEASURE METRIC IMPL: the numeric values, one a line
    awk -F'\t' -v m="$1" -v k="$2" -v i="$3" 'NR > 1 && $3 == m && $4 == k && $2 == i && $5 ~ /^[0-9.]+$/ { print $5 }' "$DATA"
}
runs_of() { awk -F'\t' -v m="$1" -v k="$2" -v i="$3" 'NR > 1 && $3 == m && $4 == k && $2 == i' "$DATA" | wc -l; }

# measure, metric, label, whether a tandem/keepalived ratio means something
ROWS_SPEC=(
    "crash gap_ms crash: client gap (ms) ratio"
    "crash takeover_ms crash: n2 holds the VIP after (ms) ratio"
    "crash gone_ms crash: VIP gone from the killed n1 after (ms) -"
    "move gap_ms move: client gap (ms) ratio"
    "move takeover_ms move: n2 holds the VIP after (ms) ratio"
    "pair dual_cut_s pair cut: both held, during the cut (s) -"
    "pair dual_heal_s pair cut: both held, after the heal (s) -"
    "pair takeover_ms pair cut: n2 (also) held the VIP after (ms) -"
    "pair answered_pct pair cut: client probes answered (%) -"
    "pair gap_ms pair cut: client longest gap (ms) -"
    "pair changes pair cut: client answerer changes -"
    "isolate dual_cut_s isolate: both held, during the cut (s) -"
    "isolate dual_heal_s isolate: both held, after the heal (s) -"
    "isolate drop_ms isolate: n1 dropped the VIP after (ms) -"
    "isolate takeover_ms isolate: n2 holds the VIP after (ms) -"
    "isolate answered_pct isolate: client probes answered (%) -"
    "isolate gap_ms isolate: client longest gap (ms) -"
    "isolate changes isolate: client answerer changes -"
    "loss10 held_pct 10 % loss: exactly one holder (% of the time) ratio"
    "loss10 dual_s 10 % loss: both held (s) -"
    "loss10 gap_ms 10 % loss: client longest gap (ms) ratio"
    "loss30 held_pct 30 % loss: exactly one holder (% of the time) ratio"
    "loss30 dual_s 30 % loss: both held (s) -"
    "loss30 gap_ms 30 % loss: client longest gap (ms) ratio"
    "deaf held_pct holder deaf: exactly one holder (% of the time) ratio"
    "deaf takeover_ms holder deaf: n2 holds the VIP after (ms) ratio"
    "deaf dual_s holder deaf: both held (s) -"
    "config commit_ms config: tandemctl config apply returned (ms) -"
    "config n1_ms config: n1 runs it, polled (ms) -"
    "config n2_ms config: n2 runs it, polled (ms) -"
    "config witness_ms config: witness has it, polled (ms) -"
    "config all_ms config: every node, polled (ms) -"
    "config n1_log_ms config: n1 runs it, its log (ms) -"
    "config n2_log_ms config: n2 runs it, its log (ms) -"
)

# shellcheck disable=SC2034 # read by print_text_table and print_md_table (namerefs)
HDR=(measurement implementation runs min median max "total (s)" "tandem/keepalived")
TABLE=()
for spec in "${ROWS_SPEC[@]}"; do
    read -r m k rest <<<"$spec"
    label="${rest% *}"
    want_ratio="${rest##* }"
    med_t=""
    med_k=""
    for impl in tandem keepalived; do
        [ "$m" = config ] && [ "$impl" = keepalived ] && continue
        total_runs="$(runs_of "$m" "$k" "$impl")"
        [ "$total_runs" -gt 0 ] || continue
        mapfile -t vals < <(values_of "$m" "$k" "$impl")
        if [ "${#vals[@]}" -gt 0 ]; then
            lo="$(printf '%s\n' "${vals[@]}" | sort -g | head -n 1)"
            hi="$(printf '%s\n' "${vals[@]}" | sort -g | tail -n 1)"
            med="$(median "${vals[@]}")"
        else
            lo="-"; hi="-"; med=""
        fi
        total=""
        [[ "$k" == *_s ]] && total="$(printf '%s\n' "${vals[@]}" | awk '{ s += $1 } END { printf "%.2f", s }')"
        r=""
        if [ "$impl" = tandem ]; then
            med_t="$med"
        else
            med_k="$med"
            [ "$want_ratio" = ratio ] && r="$(ratio "$med_t" "$med_k")"
        fi
        TABLE+=("$label"$'\t'"$impl"$'\t'"${#vals[@]}/$total_runs"$'\t'"$lo"$'\t'"${med:--}"$'\t'"$hi"$'\t'"${total:--}"$'\t'"$r")
    done
done

print_text_table HDR TABLE | tee "$LOGS/table.txt"

load_end="$(cut -d' ' -f1-3 /proc/loadavg)"
MD="$RESULTS/cluster-$STAMP.md"
{
    echo "# Cluster failover: tandem (Raft-fenced) beside keepalived ($STAMP)"
    echo
    echo "Command: \`bench/cluster.sh --rounds $ROUNDS --interval $INTERVAL --partition $PARTITION_S --probe-timeout $PROBE_TIMEOUT\`"
    echo
    echo "Client gaps: tandem-probe in the client, a TCP connection to VIP:7000 every 10 ms ($PROBE_TIMEOUT"
    echo "timeout), the longest time without an answer. Holders: both nodes' FIB and kernel fence every 10 ms (tandem-holders)."
    echo "Dual-holding: seconds during which both n1 and n2 had the VIP as a local address."
    echo "Ratio: tandem's median over keepalived's (below 1: tandem is faster)."
    echo
    print_md_table HDR TABLE
    echo
    echo "## Setup"
    echo
    echo "- machine: $(nproc) CPUs, $(uname -sr), load average at the end: $load_end"
    echo "- tandemd: ${TANDEMD_USED:-?}"
    echo "- keepalived: $(keepalived --version 2>&1 | head -n 1)"
    echo "- both: VIP $VIP/24, VRID 51, n1 priority 150, n2 100, advert interval $INTERVAL, preemption on,"
    echo "  gratuitous ARP refreshed every 2 s by the master"
    echo "- tandem: appliance/lab.sh up --cluster: fencing = \"raft\", lease timing defaults (lease 2 s,"
    echo "  safety margin 800 ms, slack 300 ms, renew every 300 ms), Raft heartbeat 100 ms, election"
    echo "  timeout 300 ms, a witness as third voter"
    echo "- keepalived: appliance/lab.sh up --keepalived n1 --keepalived n2: vrrp_version 3, no lease,"
    echo "  no witness; tandemd without VRRP forwards"
    echo "- partitions: nftables at the lab's bridge for $PARTITION_S s, then healed; observed $AFTER_HEAL_S s more"
    echo "- rounds: $ROUNDS, alternating which implementation goes first; a fresh lab per round and implementation"
    echo "- logs, probe outputs (*.probe) and holder samples (*.holders): bench/results/cluster-$STAMP/"
    echo
    echo "## Every run"
    echo
    echo "| round | implementation | measurement | metric | value |"
    echo "|---|---|---|---|---|"
    awk -F'\t' 'NR > 1 { printf "| %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5 }' "$DATA"
    echo
    echo "| round | implementation | measurement | details |"
    echo "|---|---|---|---|"
    awk -F'\t' 'NR > 1 { gsub(/\|/, "\\|", $4); printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }' "$INFO"
} >"$MD"
# The labs' own state dirs: their logs are in $LOGS now (kept there after a failure).
rm -rf "/run/tandem-lab/${NAME}t" "/run/tandem-lab/${NAME}k"
echo "$BENCH_NAME: wrote $MD (logs in $LOGS/)"
