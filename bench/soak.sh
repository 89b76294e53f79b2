#!/usr/bin/env bash
# Soak: tandemd under a bounded mixed load with flapping backends and reloads, watching
# its memory and descriptors for growth. Everything on 127.0.0.1; every process it starts
# is stopped by PID on exit (also on Ctrl-C). A check for people to read, like the other
# benchmarks: it fails only when something could not be started or tandemd died.
#
# Usage: bench/soak.sh [--minutes 10] [--interval 30] [--warmup 60] [--reload-every 30]
#                      [--flap-every 20] [--base-port 18380] [--keep-tmp]
#
#   --minutes N       how long the load runs (default 10; 2 is a smoke run)
#   --interval S      seconds between samples of tandemd's RSS and open descriptors (30)
#   --warmup S        samples before this many seconds are shown but left out of the
#                     verdict: allocator arenas and pools fill in the first minute (60)
#   --reload-every S  seconds between reloads: the config is rewritten (a backend weight
#                     toggles between 1 and 2) and tandemd gets SIGHUP (default 30)
#   --flap-every S    seconds between backend flaps: one HTTP backend (in turn) is killed
#                     and started again 5 s later (default 20)
#   --base-port P     ports P..P+4: tandem HTTP (HTTP/1.1 and h2c), tandem L4, HTTP backends
#                     b1 and b2, the TCP echo backend (default 18380)
#   --keep-tmp        keep the temporary directory (config, logs, load output)
#
# The load, all at once for the whole run:
#   - HTTP/1.1 keep-alive: wrk (20 connections), else a curl loop;
#   - HTTP/2 (h2c): h2load (10 connections x 10 streams), else a curl loop;
#   - a rapid-reset client (HTTP/2 streams opened and cancelled at once, batches of 100);
#   - TCP through the L4 listener: two clients, connect / 1 KiB echo / close in a loop.
# tandemd: $TANDEMD, else target/release/tandemd, else target/debug/tandemd (under
# $CARGO_TARGET_DIR when set).
#
# Output: one table row per sample (elapsed, RSS, descriptors, threads; the row at 0 s is
# before the load), the load's summaries, and a verdict comparing the mean of the first
# third of the samples after the warm-up with the last third (growth of RSS over 10 % and
# 4 MiB, or of descriptors over 10 % and 16, is reported as growth).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

MINUTES=10
INTERVAL=30
WARMUP=60
RELOAD_EVERY=30
FLAP_EVERY=20
BASE_PORT=18380
KEEP_TMP=0
PIN=0
while [ $# -gt 0 ]; do
    case "$1" in
    --minutes) MINUTES="$2"; shift 2 ;;
    --interval) INTERVAL="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --reload-every) RELOAD_EVERY="$2"; shift 2 ;;
    --flap-every) FLAP_EVERY="$2"; shift 2 ;;
    --base-port) BASE_PORT="$2"; shift 2 ;;
    --keep-tmp) KEEP_TMP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
    esac
done
is_uint "$WARMUP" || die "--warmup must be a number of seconds, got \"$WARMUP\""
for n in "$MINUTES" "$INTERVAL" "$RELOAD_EVERY" "$FLAP_EVERY" "$BASE_PORT"; do
    is_uint "$n" && [ "$n" -gt 0 ] || die "numbers must be positive integers, got \"$n\""
done

TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ -z "${TANDEMD:-}" ]; then
    TANDEMD="$TARGET/release/tandemd"
    [ -x "$TANDEMD" ] || TANDEMD="$TARGET/debug/tandemd"
fi
check_tandemd
require_tools curl:curl python3:python3
CLIENTS="$ROOT/bench/soak_clients.py"
HTTP_PORT=$BASE_PORT
L4_PORT=$((BASE_PORT + 1))
B1_PORT=$((BASE_PORT + 2))
B2_PORT=$((BASE_PORT + 3))
ECHO_PORT=$((BASE_PORT + 4))
check_ports_free "$HTTP_PORT" "$L4_PORT" "$B1_PORT" "$B2_PORT" "$ECHO_PORT"
SECONDS_TOTAL=$((MINUTES * 60))
# The load outlasts the sampling by a few seconds, so the last sample is taken under load.
LOAD_SECONDS=$((SECONDS_TOTAL + 5))

make_tmp tandem-soak
CONFIG="$TMP/tandem.toml"

write_config() { # write_config WEIGHT: the config with b1 at WEIGHT
    cat >"$CONFIG" <<EOF
[node]
id = "soak"
admin_socket = ""
drain_timeout = "2s"

[[listener]]
name = "web"
protocol = "http"
bind = "127.0.0.1:$HTTP_PORT"
pool = "web"

[[listener]]
name = "tcp"
bind = "127.0.0.1:$L4_PORT"
pool = "echo"

[[pool]]
name = "web"
algorithm = "round_robin"
[pool.health_check]
kind = "http"
path = "/healthz"
interval = "1s"
timeout = "500ms"
rise = 1
fall = 2
[[pool.backend]]
id = "b1"
address = "127.0.0.1:$B1_PORT"
weight = $1
[[pool.backend]]
id = "b2"
address = "127.0.0.1:$B2_PORT"

[[pool]]
name = "echo"
[[pool.backend]]
id = "echo"
address = "127.0.0.1:$ECHO_PORT"
EOF
}

start_backend() { # start_backend b1|b2
    local port=$B1_PORT
    [ "$1" = b2 ] && port=$B2_PORT
    start "$1" 0 "$TMP/$1.log" python3 "$CLIENTS" backend "$port" "$1"
}

write_config 1
start_backend b1
start_backend b2
start echo 0 "$TMP/echo.log" python3 "$CLIENTS" tcp-echo "$ECHO_PORT"
# shellcheck disable=SC2154 # set by lib.sh start() through eval
wait_port "$B1_PORT" "$PID_b1" b1 "$TMP/b1.log"
# shellcheck disable=SC2154 # set by lib.sh start() through eval
wait_port "$B2_PORT" "$PID_b2" b2 "$TMP/b2.log"
# shellcheck disable=SC2154 # set by lib.sh start() through eval
wait_port "$ECHO_PORT" "$PID_echo" echo "$TMP/echo.log"
start tandemd 0 "$TMP/tandemd.log" env RUST_LOG=warn "$TANDEMD" run --config "$CONFIG"
# shellcheck disable=SC2154 # set by lib.sh start() through eval
TANDEMD_PID=$PID_tandemd
wait_port "$HTTP_PORT" "$TANDEMD_PID" tandemd "$TMP/tandemd.log"
wait_port "$L4_PORT" "$TANDEMD_PID" tandemd "$TMP/tandemd.log"
curl -fsS --max-time 5 "http://127.0.0.1:$HTTP_PORT/" >/dev/null || die "no answer through tandem at start"

echo "soak: $(tandemd_description)"
echo "soak: $MINUTES min, samples every ${INTERVAL}s, reload every ${RELOAD_EVERY}s, a backend flap every ${FLAP_EVERY}s"

curl_loop() { # curl_loop SECONDS OUT CURL_ARGS...: requests one after the other
    local until=$((SECONDS + $1)) out="$2" ok=0 failed=0
    shift 2
    while [ "$SECONDS" -lt "$until" ]; do
        if curl -fsS --max-time 5 -o /dev/null "$@" 2>/dev/null; then ok=$((ok + 1)); else failed=$((failed + 1)); fi
    done
    echo "curl $*: $ok ok, $failed failed" >"$out"
}

load() { # load NAME CMD...: a load generator, stopped on exit like the rest
    (exec "${@:2}") >"$TMP/load-$1.out" 2>&1 &
    LOAD_PIDS+=("$!")
}
URL="http://127.0.0.1:$HTTP_PORT/"
if command -v wrk >/dev/null; then
    load http1 wrk -t1 -c20 -d"${LOAD_SECONDS}s" "$URL"
else
    load http1 bash -c "$(declare -f curl_loop); curl_loop $LOAD_SECONDS /dev/stdout $URL"
fi
if command -v h2load >/dev/null; then
    load http2 h2load -c10 -m10 -D "$LOAD_SECONDS" "$URL"
else
    load http2 bash -c "$(declare -f curl_loop); curl_loop $LOAD_SECONDS /dev/stdout --http2-prior-knowledge $URL"
fi
load rapid-reset python3 "$CLIENTS" rapid-reset "$HTTP_PORT" "$LOAD_SECONDS"
load tcp python3 "$CLIENTS" tcp "$L4_PORT" "$LOAD_SECONDS"

sample() { # one row: elapsed, RSS (KiB), descriptors, threads
    local rss fds threads
    rss="$(awk '/^VmRSS:/ { print $2 }' "/proc/$TANDEMD_PID/status")"
    threads="$(awk '/^Threads:/ { print $2 }' "/proc/$TANDEMD_PID/status")"
    fds="$(find "/proc/$TANDEMD_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)"
    printf '%s\t%s\t%s\t%s\n' "$1" "$rss" "$fds" "$threads"
}

ROWS=()
printf '%8s  %10s  %11s  %7s\n' elapsed "RSS (MiB)" descriptors threads
report_row() {
    local row
    row="$(sample "$1")"
    ROWS+=("$row")
    awk -F'\t' '{ printf "%7ss  %10.1f  %11s  %7s\n", $1, $2 / 1024, $3, $4 }' <<<"$row"
}

START=$SECONDS
weight=1
flapped=""
restart_at=0
reloads=0
flaps=0
next_reload=$RELOAD_EVERY
next_flap=$FLAP_EVERY
next_sample=$INTERVAL
report_row 0
# Deadlines rather than "elapsed % N": a step that takes more than a second (stopping a
# backend) must not skip a sample, a reload or a flap.
while :; do
    sleep 1
    elapsed=$((SECONDS - START))
    kill -0 "$TANDEMD_PID" 2>/dev/null || { tail -20 "$TMP/tandemd.log" >&2; die "tandemd died after ${elapsed}s (log above)"; }
    if [ "$elapsed" -ge "$next_reload" ]; then
        weight=$((3 - weight))
        write_config "$weight"
        kill -HUP "$TANDEMD_PID"
        reloads=$((reloads + 1))
        next_reload=$((next_reload + RELOAD_EVERY))
    fi
    if [ -z "$flapped" ] && [ "$elapsed" -ge "$next_flap" ] && [ "$elapsed" -lt "$SECONDS_TOTAL" ]; then
        flapped=b$((flaps % 2 + 1))
        stop_pid "$(eval echo "\$PID_$flapped")"
        restart_at=$((elapsed + 5))
        flaps=$((flaps + 1))
        next_flap=$((next_flap + FLAP_EVERY))
    fi
    if [ -n "$flapped" ] && [ "$elapsed" -ge "$restart_at" ]; then
        start_backend "$flapped"
        flapped=""
    fi
    if [ "$elapsed" -ge "$next_sample" ] || [ "$elapsed" -ge "$SECONDS_TOTAL" ]; then
        report_row "$elapsed"
        next_sample=$((next_sample + INTERVAL))
    fi
    [ "$elapsed" -ge "$SECONDS_TOTAL" ] && break
done

# Let the load generators finish and print their summaries (they stop on their own).
for pid in "${LOAD_PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
done
echo
echo "load: $reloads reloads, $flaps backend flaps"
[ -s "$TMP/load-http1.out" ] && grep -E "requests in|Non-2xx|Socket errors|curl" "$TMP/load-http1.out" | sed 's/^ */  http1: /'
[ -s "$TMP/load-http2.out" ] && grep -E "^requests:|^status codes:|curl" "$TMP/load-http2.out" | sed 's/^/  http2: /'
sed 's/^/  /' "$TMP/load-rapid-reset.out" "$TMP/load-tcp.out"
curl -fsS --max-time 5 "$URL" >/dev/null || die "tandemd stopped answering at the end"

# The verdict: the mean of the first third of the samples after the warm-up against the
# last third. The sample at 0 s (before the load) is the idle baseline, never part of it;
# when the warm-up leaves fewer than two samples, every sample under load counts.
printf '%s\n' "${ROWS[@]:1}" | awk -F'\t' -v warmup="$WARMUP" '
    { all_rss[NR] = $2; all_fds[NR] = $3; if ($1 >= warmup) { n++; rss[n] = $2; fds[n] = $3 } }
    END {
        if (n < 2) { n = NR; for (i = 1; i <= NR; i++) { rss[i] = all_rss[i]; fds[i] = all_fds[i] } }
        third = int(n / 3); if (third < 1) third = 1
        for (i = 1; i <= third; i++) { r0 += rss[i]; f0 += fds[i] }
        for (i = n - third + 1; i <= n; i++) { r1 += rss[i]; f1 += fds[i] }
        r0 /= third; r1 /= third; f0 /= third; f1 /= third
        dr = r1 - r0; df = f1 - f0
        grows = (dr > 0.10 * r0 && dr > 4096) || (df > 0.10 * f0 && df > 16)
        printf "verdict: %s: RSS %.1f -> %.1f MiB (%+.1f %%), descriptors %.0f -> %.0f (%+.0f), first third vs last third of %d samples after the warm-up\n",
            grows ? "GROWTH" : "stable", r0 / 1024, r1 / 1024, r0 ? 100 * dr / r0 : 0, f0, f1, df, n
    }'
