#!/usr/bin/env bash
# Failover drills against a tandem cluster: the namespace lab (appliance/lab.sh up
# --cluster) or the Vagrant boxes (vagrant/Vagrantfile). The same drills for both.
#
# Usage: vagrant/drills/run.sh --target lab|vagrant [OPTIONS] DRILL
#
# DRILL:
#   crash-holder      SIGKILL the VIP holder's tandemd; the other node takes the VIP after
#                     the lease wait; then the node is started again and rejoins
#   partition-holder  cut the holder off from both cluster peers (nftables), the client
#                     still reaching it: it must drop the VIP and the other node take it;
#                     then heal
#   planned-move      tandemctl vip move front OTHER: the holder releases, no lease wait;
#                     then vip move front --auto
#   kill-backend      SIGKILL web1's HTTP server: requests keep succeeding (retries on
#                     web2, then the health checks take web1 out); then start it again
#   rolling-upgrade   for each forwarding node in turn: SIGTERM (systemctl stop; the node
#                     releases its lease and hands over), "upgrade" (Vagrant: install.sh
#                     from the synced folder), start, wait until it has rejoined
#   all               the five above, in this order
#
# Each drill runs HTTP load from the client through VIP:8080 (lib/load.sh: curl in a
# bounded loop), injects the fault, waits for recovery, restores, and prints one line
#
#   drill=NAME failover_ms=N requests=N failed=N [more key=value] result=pass|FAIL
#
# where failover_ms is the longest time the client went without a successful answer and
# failed the requests that got none, both counted over the fault and the recovery (the
# restore afterwards is reported on a human line). Human lines start with "  ".
#
# Options:
#   --target lab|vagrant      required
#   --lab-name NAME           the lab's --name (default lab)
#   --lab-state-dir DIR       the lab's --state-dir (default /run/tandem-lab/NAME)
#   --vagrant-dir DIR         where the Vagrantfile is (default: this script's ../)
#   --request-timeout SECS    one request's limit, connect included (default 0.5; 1 on
#                             vagrant)
#   --crash-max-ms N          crash-holder: longest client gap allowed (default 4000)
#   --partition-max-ms N      partition-holder: longest gap allowed (default 6000)
#   --move-max-failed N       planned-move: failed requests allowed (default 2)
#   --move-max-ms N           planned-move: longest gap allowed (default 1500)
#   --backend-max-failed N    kill-backend: failed requests allowed (default 3; none are
#                             allowed once the health checks have marked web1 down)
#   --rolling-max-failed N    rolling-upgrade: failed requests allowed (default 4)
#   --rolling-max-ms N        rolling-upgrade: longest gap allowed (default 3000)
#   --wait-scale N            multiply the drills' observation limits (how long a node
#                             may take to take or drop the VIP, a backend to go down or up)
#                             by N (default 1; scripts/vms uses 3 under software emulation)
#   --keep                    keep the work directory (load logs) even when all passed
#
# Exit status: 0 every drill within its bounds; 1 a bound was broken (or two holders were
# seen); 2 a drill could not run (no target, no VIP holder, a node that did not recover).
# Every wait is bounded; the load stops by itself after at most 3 minutes.
set -euo pipefail

ME="vagrant/drills/run.sh"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIB="$HERE/lib"
REPO="$(cd "$HERE/../.." && pwd)"

TARGET=""
LAB_NAME=lab
LAB_STATE_DIR=""
VAGRANT_DIR="$(cd "$HERE/.." && pwd)"
REQUEST_TIMEOUT=""
CRASH_MAX_MS=4000
PARTITION_MAX_MS=6000
MOVE_MAX_FAILED=2
MOVE_MAX_MS=1500
BACKEND_MAX_FAILED=3
ROLLING_MAX_FAILED=4
ROLLING_MAX_MS=3000
KEEP=0
WAIT_SCALE=1
DRILL=""

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

say() { echo "  $*"; }
warn() { echo "$ME: warning: $*" >&2; }
# A drill that cannot run: exit 2 (the EXIT trap restores what it can).
fail_run() {
    echo "$ME: cannot run: $*" >&2
    exit 2
}

need_uint() { [[ "$2" =~ ^[0-9]+$ ]] || fail_run "$1 needs a whole number, got '$2'"; }

while [ $# -gt 0 ]; do
    case "$1" in
    --target) TARGET="${2:-}"; shift 2 ;;
    --lab-name) LAB_NAME="${2:?--lab-name needs a value}"; shift 2 ;;
    --lab-state-dir) LAB_STATE_DIR="${2:?--lab-state-dir needs a value}"; shift 2 ;;
    --vagrant-dir) VAGRANT_DIR="${2:?--vagrant-dir needs a value}"; shift 2 ;;
    --request-timeout) REQUEST_TIMEOUT="${2:?--request-timeout needs seconds}"; shift 2 ;;
    --crash-max-ms) need_uint "$1" "${2:-}"; CRASH_MAX_MS="$2"; shift 2 ;;
    --partition-max-ms) need_uint "$1" "${2:-}"; PARTITION_MAX_MS="$2"; shift 2 ;;
    --move-max-failed) need_uint "$1" "${2:-}"; MOVE_MAX_FAILED="$2"; shift 2 ;;
    --move-max-ms) need_uint "$1" "${2:-}"; MOVE_MAX_MS="$2"; shift 2 ;;
    --backend-max-failed) need_uint "$1" "${2:-}"; BACKEND_MAX_FAILED="$2"; shift 2 ;;
    --rolling-max-failed) need_uint "$1" "${2:-}"; ROLLING_MAX_FAILED="$2"; shift 2 ;;
    --rolling-max-ms) need_uint "$1" "${2:-}"; ROLLING_MAX_MS="$2"; shift 2 ;;
    --wait-scale) need_uint "$1" "${2:-}"; WAIT_SCALE="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "$ME: unknown option '$1' (see --help)" >&2; exit 2 ;;
    *) [ -z "$DRILL" ] || { echo "$ME: one drill at a time (or all)" >&2; exit 2; }; DRILL="$1"; shift ;;
    esac
done
case "$TARGET" in lab | vagrant) ;; *) echo "$ME: --target lab or --target vagrant (see --help)" >&2; exit 2 ;; esac
case "$DRILL" in
crash-holder | partition-holder | planned-move | kill-backend | rolling-upgrade | all) ;;
"") echo "$ME: which drill? (see --help)" >&2; exit 2 ;;
*) echo "$ME: unknown drill '$DRILL' (see --help)" >&2; exit 2 ;;
esac
[[ "$LAB_NAME" =~ ^[A-Za-z0-9_-]{1,24}$ ]] || fail_run "--lab-name '$LAB_NAME' is not a lab name"
LAB_STATE_DIR="${LAB_STATE_DIR:-/run/tandem-lab/$LAB_NAME}"
if [ -z "$REQUEST_TIMEOUT" ]; then
    if [ "$TARGET" = lab ]; then REQUEST_TIMEOUT=0.5; else REQUEST_TIMEOUT=1; fi
fi
[[ "$REQUEST_TIMEOUT" =~ ^[0-9]+(\.[0-9]+)?$ ]] || fail_run "--request-timeout must be seconds, e.g. 0.5"
for tool in curl awk timeout; do
    command -v "$tool" >/dev/null 2>&1 || fail_run "missing $tool"
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tandem-drills.XXXXXX")"
# shellcheck source=vagrant/drills/lib/target.sh
. "$LIB/target.sh"
# shellcheck source=vagrant/drills/lib/drills.sh
. "$LIB/drills.sh"

# ---------------------------------------------------------------- load

LOAD_PID=""
LOAD_TAG=""

# Starts the client load in the background (at most MAX_S seconds, 180 by default).
load_start() { # load_start TAG [MAX_S]
    local tag="$1" max="${2:-180}" stop
    stop="$(t_stop_file "$tag")"
    t_load_cmd
    SSH_TIMEOUT=$((max + 30)) "${LOAD_CMD[@]}" "$URL" "$stop" "$max" "$REQUEST_TIMEOUT" "$LOAD_PAUSE" \
        <"$(t_load_input)" >"$WORK/load-$tag.out" 2>"$WORK/load-$tag.err" &
    LOAD_PID=$!
    LOAD_TAG="$tag"
    # The first line says it runs.
    for _ in $(seq 100); do
        grep -q '^# start' "$WORK/load-$tag.out" 2>/dev/null && return 0
        kill -0 "$LOAD_PID" 2>/dev/null || break
        sleep 0.1
    done
    fail_run "the client load did not start: $(cat "$WORK/load-$tag.err" 2>/dev/null)"
}

# Stops the running load and waits for its last line (bounded; then it is killed).
load_stop() {
    [ -n "$LOAD_PID" ] || return 0
    t_touch_client "$(t_stop_file "$LOAD_TAG")" || true
    for _ in $(seq 100); do
        kill -0 "$LOAD_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$LOAD_PID" 2>/dev/null; then
        warn "the load did not stop within 10 s; killing PID $LOAD_PID"
        kill -TERM "$LOAD_PID" 2>/dev/null || true
    fi
    wait "$LOAD_PID" 2>/dev/null || true
    LOAD_PID=""
}

# What the client saw in one load file: "requests failed longest_gap_ms backends", the gap
# being the longest time between two successful answers (or from the start to the first,
# or from the last to the end).
load_stats() { # load_stats FILE
    awk '
        /^# start/ { start = $3; last = start; next }
        /^# end/ { end = $3; next }
        NF >= 3 {
            n++
            if ($3 == "ok") {
                if ($2 - last > gap) gap = $2 - last
                last = $2
                seen[$4] = 1
            } else {
                failed++
            }
        }
        END {
            if (end != "" && end - last > gap) gap = end - last
            names = ""
            for (b in seen) names = names (names == "" ? "" : ",") b
            printf "%d %d %d %s\n", n, failed, int(gap / 1000 + 0.5), (names == "" ? "-" : names)
        }' "$1"
}

# ---------------------------------------------------------------- waiting

OVERLAP=0

# Until exactly EXPECTED holds the VIP (any single node if EXPECTED is "any"), bounded by
# LIMIT seconds; prints the holder. Two holders at any sample set OVERLAP.
wait_holder() { # wait_holder EXPECTED LIMIT_S
    local expected="$1" limit="$2" h t0
    t0="$(date +%s)"
    while [ $(($(date +%s) - t0)) -lt "$limit" ]; do
        h="$(t_holders)"
        if [ "${h// /}" != "$h" ]; then
            OVERLAP=$((OVERLAP + 1))
            warn "two VIP holders seen: $h"
        elif [ -n "$h" ] && { [ "$expected" = any ] || [ "$h" = "$expected" ]; }; then
            echo "$h"
            return 0
        fi
        sleep "$POLL"
    done
    return 1
}

# True when NODE sees the whole cluster: a leader, three voters, and (forwarding nodes)
# the replicated config applied.
cluster_whole_on() { # cluster_whole_on NODE
    local out first
    out="$(t_ctl "$1" cluster status 2>/dev/null)" || return 1
    first="$(head -n 1 <<<"$out")"
    grep -Eq ': (Leader|Follower), .* leader [0-9]+,' <<<"$first" || return 1
    [ "$(awk '$1 ~ /^[0-9]+$/ && $3 == "yes"' <<<"$out" | wc -l)" -eq 3 ] || return 1
    [ "$1" = "$WITNESS" ] && return 0
    # "config: replicated version 1, running version 1"
    awk '/^config:/ { gsub(",", ""); exit !($4 != "-" && $4 == $7) }' <<<"$out"
}

wait_whole() { # wait_whole NODE LIMIT_S
    local t0
    t0="$(date +%s)"
    while [ $(($(date +%s) - t0)) -lt "$2" ]; do
        cluster_whole_on "$1" && return 0
        sleep "$POLL"
    done
    return 1
}

# Before a drill: one holder, the client served through the VIP, every member whole.
# Prints the holder.
wait_ready() {
    local h n
    h="$(wait_holder any "$READY_S")" || fail_run "no single VIP holder within $READY_S s (holders: '$(t_holders)')"
    for n in "${FWD[@]}" "$WITNESS"; do
        wait_whole "$n" "$READY_S" || fail_run "$n does not see a whole cluster (leader, 3 voters, config applied): $(t_ctl "$n" cluster status 2>&1 | head -n 2 | tr '\n' ' ')"
    done
    local ok=0
    for _ in $(seq 20); do
        if t_exec client curl -sf --connect-timeout 1 -m 2 "$URL" >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.5
    done
    [ "$ok" -eq 1 ] || fail_run "the client gets no answer from $URL"
    echo "$h"
}

other_of() { # the other forwarding node
    if [ "$1" = "${FWD[0]}" ]; then echo "${FWD[1]}"; else echo "${FWD[0]}"; fi
}

now_ms() { date +%s%3N; }

# ---------------------------------------------------------------- results

WORST=0

# Prints the result line; BOUNDS are "description:ok" pairs (ok 1 or 0).
result() { # result DRILL REQUESTS FAILED GAP_MS EXTRA BOUND...
    local drill="$1" requests="$2" failed="$3" gap="$4" extra="$5" verdict=pass b
    shift 5
    for b in "$@"; do
        if [ "${b##*:}" != 1 ]; then
            verdict=FAIL
            say "BOUND BROKEN: ${b%:*}"
        fi
    done
    if [ "$OVERLAP" -gt 0 ]; then
        verdict=FAIL
        say "BROKEN: two VIP holders were seen ($OVERLAP samples)"
    fi
    echo "drill=$drill failover_ms=$gap requests=$requests failed=$failed target=$TARGET${extra:+ $extra} result=$verdict"
    if [ "$verdict" != pass ] && [ "$WORST" -lt 1 ]; then WORST=1; fi
}

# ---------------------------------------------------------------- cleanup

# What the drills took down, to bring back if a drill stops half-way.
DOWN=()
CUT=0

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
    local rc=$? n
    load_stop 2>/dev/null || true
    if [ "$CUT" -eq 1 ]; then t_heal >/dev/null 2>&1 || true; fi
    for n in "${DOWN[@]}"; do
        if ! t_node_running "$n" 2>/dev/null; then
            warn "starting $n again (the drill stopped before restoring it)"
            t_start "$n" >/dev/null 2>&1 || warn "could not start $n"
        fi
    done
    if { [ "$rc" -eq 0 ] && [ "$KEEP" -eq 0 ]; } || [ -z "$(ls -A "$WORK")" ]; then
        rm -rf "$WORK"
    else
        echo "$ME: load logs and target output kept in $WORK" >&2
    fi
}
trap cleanup EXIT
# Ctrl-C or a kill: still stop the load and bring back what the drill took down.
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- main

t_init
echo "# drills against $TARGET: VIP $VIP, forwarding ${FWD[*]}, witness $WITNESS, backends ${BACKENDS[*]}, request timeout ${REQUEST_TIMEOUT}s"
if [ "$DRILL" = all ]; then
    # A drill that cannot run stops `all` (exit 2): the next would start from a broken cluster.
    for d in crash-holder partition-holder planned-move kill-backend rolling-upgrade; do
        run_drill "$d"
    done
else
    run_drill "$DRILL"
fi
exit "$WORST"
