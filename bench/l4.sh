#!/usr/bin/env bash
# L4 (TCP) benchmark: tandem's TCP listener against HAProxy in `mode tcp`, both in front of
# the same nginx backend, all on 127.0.0.1. A benchmark for people to read, not a test: it
# never fails on a number, only when something could not be started or measured.
#
# Usage: bench/l4.sh [--duration 10] [--connections 50] [--threads 1] [--warmup 2]
#                    [--rounds 1] [--proxy-cpu 1] [--load-cpu 0] [--no-pin]
#                    [--base-port 18080] [--haproxy-splice] [--keep-tmp]
#
#   --duration S      seconds of each measured wrk run (default 10)
#   --connections N   wrk connections (default 50); --threads N: wrk threads (default 1)
#   --warmup S        seconds of an unmeasured wrk run before each measured one (default 2)
#   --rounds N        repeat the whole matrix N times, each round starting with another
#                     target, and report medians (default 1; use 3+ on a noisy machine)
#   --proxy-cpu/--load-cpu  the CPU of the proxies, and of nginx and wrk (default 1 and 0)
#   --no-pin          no taskset at all
#   --base-port P     ports P (nginx), P+1 (HAProxy), P+2 (tandem), P+3 (HAProxy splice)
#   --haproxy-splice  also measure HAProxy with `option splice-auto` (1 MiB scenario only)
#   --keep-tmp        keep the temporary directory (configs, logs, raw wrk output)
#
# Total time: about rounds x 6 x (warmup + duration) seconds, plus a few seconds.
#
# Two scenarios, each against three targets (the backend directly, HAProxy, tandem):
#   small  GET /ok over keep-alive, a 3-byte body: requests/s and p99 latency
#   1mib   GET /1m, a 1 MiB static file, repeatedly: MiB/s (wrk's bytes read per second)
# Every target gets a short warm-up before its measured run.
#
# Fairness: one worker each (nginx worker_processes 1, HAProxy nbthread 1,
# TOKIO_WORKER_THREADS=1 for tandemd); the proxies are pinned to --proxy-cpu, nginx and wrk
# to --load-cpu (taskset). No health checks and no logging of connections on either proxy.
#
# Results: one table on stdout and the same as Markdown in bench/results/l4-<timestamp>.md
# (with the raw wrk output), plus tandemd's log as bench/results/l4-<timestamp>-tandemd.log.
#
# Needs: haproxy, nginx (nginx-light is enough), wrk, taskset, curl, ss, and the release binary
# (cargo build --release -p tandemd), or TANDEMD=/path/to/tandemd.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"

DURATION=10
CONNECTIONS=50
THREADS=1
WARMUP=2
PROXY_CPU=1
LOAD_CPU=0
PIN=1
BASE_PORT=18080
SPLICE=0
ROUNDS=1
KEEP_TMP=0
TANDEMD="${TANDEMD:-$ROOT/target/release/tandemd}"

# die, start, stop_pid, run_wrk, the CPU probes and the tables: shared with bench/l7.sh.
source "$ROOT/bench/lib.sh"

while [ $# -gt 0 ]; do
    case "$1" in
    --duration) DURATION="${2:?}"; shift 2 ;;
    --connections) CONNECTIONS="${2:?}"; shift 2 ;;
    --threads) THREADS="${2:?}"; shift 2 ;;
    --warmup) WARMUP="${2:?}"; shift 2 ;;
    --proxy-cpu) PROXY_CPU="${2:?}"; shift 2 ;;
    --load-cpu) LOAD_CPU="${2:?}"; shift 2 ;;
    --no-pin) PIN=0; shift ;;
    --base-port) BASE_PORT="${2:?}"; shift 2 ;;
    --haproxy-splice) SPLICE=1; shift ;;
    --rounds) ROUNDS="${2:?}"; shift 2 ;;
    --keep-tmp) KEEP_TMP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
for v in DURATION CONNECTIONS THREADS WARMUP PROXY_CPU LOAD_CPU BASE_PORT ROUNDS; do
    is_uint "${!v}" || die "--$(echo "$v" | tr 'A-Z_' 'a-z-') must be a whole number, got '${!v}'"
done
[ "$DURATION" -ge 1 ] || die "--duration must be at least 1"
[ "$THREADS" -ge 1 ] || die "--threads must be at least 1"
[ "$ROUNDS" -ge 1 ] || die "--rounds must be at least 1"
[ "$CONNECTIONS" -le 4000 ] || die "--connections must be at most 4000 (both proxies allow 4096 connections)"
[ "$CONNECTIONS" -ge "$THREADS" ] || die "--connections must be at least --threads (wrk needs one per thread)"
[ "$BASE_PORT" -ge 1024 ] && [ "$BASE_PORT" -le 65500 ] || die "--base-port must be in 1024..65500"

# ---------------------------------------------------------------- prerequisites
require_tools haproxy:haproxy nginx:nginx-light wrk:wrk curl:curl taskset:util-linux ss:iproute2
HAPROXY="$(tool_path haproxy)"
NGINX="$(tool_path nginx)"
WRK="$(tool_path wrk)"
check_tandemd
check_pinning

# ---------------------------------------------------------------- ports
P_BACKEND=$BASE_PORT
P_HAPROXY=$((BASE_PORT + 1))
P_TANDEM=$((BASE_PORT + 2))
P_SPLICE=$((BASE_PORT + 3))
ports=("$P_BACKEND" "$P_HAPROXY" "$P_TANDEM")
[ "$SPLICE" = 1 ] && ports+=("$P_SPLICE")
check_ports_free "${ports[@]}"

# ---------------------------------------------------------------- temp dir, processes, cleanup
make_tmp tandem-l4-bench

# ---------------------------------------------------------------- backend: nginx
mkdir -p "$TMP/www" "$TMP/nginx"
head -c 1048576 /dev/urandom >"$TMP/www/1m"
# nginx's worker drops to 'nobody' when started as root: let it read the document root.
chmod 0755 "$TMP" "$TMP/www"
chmod 0644 "$TMP/www/1m"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/client_body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    # Keep-alive for the whole run: no reconnects (which a proxy would pay twice).
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$P_BACKEND backlog=4096;
        root $TMP/www;
        location = /ok { default_type text/plain; return 200 "ok\n"; }
        location / { }
    }
}
EOF
"$NGINX" -t -q -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" \
    || { cat "$TMP/nginx/error.log" >&2 || true; die "nginx rejected its config"; }
start nginx "$LOAD_CPU" "$TMP/nginx/stderr.log" \
    "$NGINX" -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf" -g 'daemon off;'
# shellcheck disable=SC2154 # set by lib.sh start() through eval
wait_port "$P_BACKEND" "$PID_nginx" nginx "$TMP/nginx/error.log"

# ---------------------------------------------------------------- proxy: HAProxy (mode tcp)
haproxy_config() { # haproxy_config PORT EXTRA_DEFAULTS_LINE
    cat <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 5m
    timeout server 5m
    $2
frontend bench
    bind 127.0.0.1:$1
    default_backend nginx
backend nginx
    server nginx 127.0.0.1:$P_BACKEND
EOF
}
haproxy_config "$P_HAPROXY" "" >"$TMP/haproxy.cfg"
"$HAPROXY" -c -q -f "$TMP/haproxy.cfg" >"$TMP/haproxy-check.log" 2>&1 \
    || { cat "$TMP/haproxy-check.log" >&2; die "haproxy rejected its config"; }
start haproxy "$PROXY_CPU" "$TMP/haproxy.log" "$HAPROXY" -f "$TMP/haproxy.cfg" -db
# shellcheck disable=SC2154 # set by lib.sh start() through eval
wait_port "$P_HAPROXY" "$PID_haproxy" haproxy "$TMP/haproxy.log"
if [ "$SPLICE" = 1 ]; then
    haproxy_config "$P_SPLICE" "option splice-auto" >"$TMP/haproxy-splice.cfg"
    start haproxy_splice "$PROXY_CPU" "$TMP/haproxy-splice.log" "$HAPROXY" -f "$TMP/haproxy-splice.cfg" -db
    # shellcheck disable=SC2154 # set by lib.sh start() through eval
    wait_port "$P_SPLICE" "$PID_haproxy_splice" haproxy-splice "$TMP/haproxy-splice.log"
fi

# ---------------------------------------------------------------- proxy: tandem (L4 listener)
mkdir -p "$TMP/tandem"
cat >"$TMP/tandem/tandem.toml" <<EOF
[node]
id = "bench"
data_dir = "$TMP/tandem/data"
admin_socket = "$TMP/tandem/admin.sock"
drain_timeout = "1s"

[[listener]]
name = "bench"
bind = "127.0.0.1:$P_TANDEM"
pool = "nginx"
max_connections = 4096

[[pool]]
name = "nginx"
algorithm = "round_robin"

[[pool.backend]]
id = "nginx"
address = "127.0.0.1:$P_BACKEND"
EOF
"$TANDEMD" check-config "$TMP/tandem/tandem.toml" >/dev/null || die "tandemd rejected its config"
start tandemd "$PROXY_CPU" "$TMP/tandem/tandemd.log" \
    env TOKIO_WORKER_THREADS=1 RUST_LOG=info NO_COLOR=1 "$TANDEMD" run --config "$TMP/tandem/tandem.toml"
# shellcheck disable=SC2154 # set by lib.sh start() through eval
wait_port "$P_TANDEM" "$PID_tandemd" tandemd "$TMP/tandem/tandemd.log"

# ---------------------------------------------------------------- sanity: every target serves both URLs
declare -A PORT_OF=([direct]=$P_BACKEND [haproxy]=$P_HAPROXY [tandem]=$P_TANDEM [haproxy-splice]=$P_SPLICE)
declare -A PID_OF=([direct]="" [haproxy]=$PID_haproxy [tandem]=$PID_tandemd)
TARGETS=(direct haproxy tandem)
if [ "$SPLICE" = 1 ]; then
    TARGETS+=(haproxy-splice)
    PID_OF[haproxy-splice]=$PID_haproxy_splice
fi
for t in "${TARGETS[@]}"; do
    body="$(curl -fsS --max-time 5 "http://127.0.0.1:${PORT_OF[$t]}/ok")" || die "$t: GET /ok failed"
    [ "$body" = "ok" ] || die "$t: GET /ok answered '$body'"
    size="$(curl -fsS --max-time 10 -o /dev/null -w '%{size_download}' "http://127.0.0.1:${PORT_OF[$t]}/1m")" \
        || die "$t: GET /1m failed"
    [ "$size" = 1048576 ] || die "$t: GET /1m gave $size bytes, not 1048576"
done

# ---------------------------------------------------------------- measuring
# wrk prints its usual report (kept for the Markdown) and, from this script, one line of
# exact numbers: latency in microseconds, bytes, and every error class.
write_report_lua "$TMP/report.lua"

declare -A URL_PATH=([small]=/ok [1mib]=/1m)
SCENARIOS=(small 1mib)
declare -A R=() # R[scenario,target,field,round] per run; R[scenario,target,field] over rounds
RAW="$TMP/raw.md"
: >"$RAW"
ROUND_ROWS=()

wanted() { ! { [ "$2" = haproxy-splice ] && [ "$1" = small ]; }; } # splice: bulk transfer only

n_runs=0
for s in "${SCENARIOS[@]}"; do for t in "${TARGETS[@]}"; do wanted "$s" "$t" && n_runs=$((n_runs + 1)); done; done
n_runs=$((n_runs * ROUNDS))
echo "tandem L4 benchmark: $n_runs runs of ${WARMUP}s warm-up + ${DURATION}s (about $((n_runs * (WARMUP + DURATION)))s)"
echo "wrk -t $THREADS -c $CONNECTIONS; pinning: $([ "$PIN" = 1 ] && echo "proxies on CPU $PROXY_CPU, nginx and wrk on CPU $LOAD_CPU" || echo off)"

measure() { # measure SCENARIO TARGET ROUND: one warm-up and one measured wrk run
    local s="$1" t="$2" r="$3" url pid c0 c1 w0 w1 out line kv secs st0 st1 k
    url="http://127.0.0.1:${PORT_OF[$t]}${URL_PATH[$s]}"
    pid="${PID_OF[$t]}"
    printf '  %-6s %-15s ' "$s" "$t"
    if [ "$WARMUP" -gt 0 ]; then
        run_wrk "$WARMUP" "$url" "$TMP/warmup.out"
    fi
    if [ -n "$pid" ]; then
        # Reset the peak RSS to the current RSS (Linux >= 4.0), so VmHWM is this run's peak.
        echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
    fi
    c0="$(cpu_ticks "$pid")"
    w0="$(runq_wait_ns "$pid")"
    mapfile -t st0 < <(cpu_snapshot)
    out="$TMP/wrk-$s-$t-$r.out"
    run_wrk "$DURATION" "$url" "$out"
    mapfile -t st1 < <(cpu_snapshot)
    c1="$(cpu_ticks "$pid")"
    w1="$(runq_wait_ns "$pid")"
    read -r "R[$s,$t,load_busy,$r]" "R[$s,$t,load_steal,$r]" < <(cpu_busy "${st0[0]}" "${st1[0]}")
    read -r "R[$s,$t,proxy_busy,$r]" "R[$s,$t,proxy_steal,$r]" < <(cpu_busy "${st0[1]}" "${st1[1]}")
    R[$s,$t,rss_kib,$r]=""
    if [ -n "$pid" ]; then
        kill -0 "$pid" 2>/dev/null || die "$t (pid $pid) died during the run"
        R[$s,$t,rss_kib,$r]="$(vm_hwm_kib "$pid")"
    fi
    line="$(grep '^WRKRESULT ' "$out")" || { cat "$out" >&2; die "no result from wrk against $url"; }
    for kv in ${line#WRKRESULT }; do
        R[$s,$t,${kv%%=*},$r]="${kv#*=}"
    done
    secs="$(awk -v us="${R[$s,$t,duration_us,$r]}" 'BEGIN { printf "%.6f", us / 1e6 }')"
    R[$s,$t,rps,$r]="$(awk -v n="${R[$s,$t,requests,$r]}" -v d="$secs" 'BEGIN { printf "%.0f", n / d }')"
    R[$s,$t,mibps,$r]="$(awk -v b="${R[$s,$t,bytes,$r]}" -v d="$secs" 'BEGIN { printf "%.1f", b / d / 1048576 }')"
    R[$s,$t,cpu,$r]=""
    R[$s,$t,runq,$r]=""
    if [ -n "$pid" ]; then
        R[$s,$t,cpu,$r]="$(awk -v a="$c0" -v b="$c1" -v hz="$CLK_TCK" -v d="$secs" 'BEGIN { printf "%.0f", (b - a) / hz / d * 100 }')"
        R[$s,$t,runq,$r]="$(awk -v a="$w0" -v b="$w1" -v d="$secs" 'BEGIN { printf "%.0f", (b - a) / 1e9 / d * 100 }')"
    fi
    R[$s,$t,errors,$r]=0
    for k in connect read write status timeout; do
        R[$s,$t,errors,$r]=$((${R[$s,$t,errors,$r]} + ${R[$s,$t,$k,$r]}))
    done
    printf '%s req/s, p99 %s ms, %s MiB/s, errors %s\n' "${R[$s,$t,rps,$r]}" \
        "$(awk -v u="${R[$s,$t,p99_us,$r]}" 'BEGIN { printf "%.2f", u / 1000 }')" \
        "${R[$s,$t,mibps,$r]}" "${R[$s,$t,errors,$r]}"
    ROUND_ROWS+=("$s"$'\t'"$t"$'\t'"$r"$'\t'"${R[$s,$t,rps,$r]}"$'\t'"$(awk -v u="${R[$s,$t,p99_us,$r]}" 'BEGIN { printf "%.2f ms", u / 1000 }')"$'\t'"${R[$s,$t,mibps,$r]}"$'\t'"${R[$s,$t,errors,$r]}")
    {
        echo "#### $s → $t$([ "$ROUNDS" -gt 1 ] && echo ", round $r")"
        echo
        echo '```'
        grep -v '^WRKRESULT ' "$out"
        echo '```'
        echo
    } >>"$RAW"
}

for ((r = 1; r <= ROUNDS; r++)); do
    [ "$ROUNDS" -gt 1 ] && echo " round $r of $ROUNDS"
    # Each round starts with a different target, so slow drifts of a shared machine do not
    # always hit the same one.
    order=()
    for ((i = 0; i < ${#TARGETS[@]}; i++)); do
        order+=("${TARGETS[$(((i + r - 1) % ${#TARGETS[@]}))]}")
    done
    for s in "${SCENARIOS[@]}"; do
        for t in "${order[@]}"; do
            wanted "$s" "$t" && measure "$s" "$t" "$r"
        done
    done
done

for s in "${SCENARIOS[@]}"; do
    for t in "${TARGETS[@]}"; do
        wanted "$s" "$t" || continue
        for f in rps mibps p99_us rss_kib cpu runq load_busy load_steal proxy_busy proxy_steal; do
            vals=()
            for ((r = 1; r <= ROUNDS; r++)); do vals+=("${R[$s,$t,$f,$r]}"); done
            R[$s,$t,$f]="$(median "${vals[@]}")"
        done
        for f in errors connect read write status timeout; do
            R[$s,$t,$f]=0
            for ((r = 1; r <= ROUNDS; r++)); do R[$s,$t,$f]=$((${R[$s,$t,$f]} + ${R[$s,$t,$f,$r]})); done
        done
        R[$s,$t,rps]="$(awk -v x="${R[$s,$t,rps]}" 'BEGIN { printf "%.0f", x }')"
        R[$s,$t,mibps]="$(awk -v x="${R[$s,$t,mibps]}" 'BEGIN { printf "%.1f", x }')"
        R[$s,$t,p99_ms]="$(awk -v u="${R[$s,$t,p99_us]}" 'BEGIN { printf "%.2f", u / 1000 }')"
    done
done

# ---------------------------------------------------------------- the table
errs_detail() { # "0" or "12 (read 10, timeout 2)"
    local s="$1" t="$2" d="" k
    for k in connect read write status timeout; do
        [ "${R[$s,$t,$k]}" -gt 0 ] && d="$d${d:+, }$k ${R[$s,$t,$k]}"
    done
    [ -n "$d" ] && echo "${R[$s,$t,errors]} ($d)" || echo "0"
}

# shellcheck disable=SC2034 # passed by name to print_*_table
HEADER=(scenario target "req/s" "p99" "MiB/s" "peak RSS" "proxy CPU" "errors")
ROWS=()
add_row() { local IFS=$'\t'; ROWS+=("$*"); }
for s in "${SCENARIOS[@]}"; do
    for t in "${TARGETS[@]}"; do
        wanted "$s" "$t" || continue
        add_row "$s" "$t" "${R[$s,$t,rps]}" "${R[$s,$t,p99_ms]} ms" "${R[$s,$t,mibps]}" \
            "$(fmt_rss "${R[$s,$t,rss_kib]}")" "$(pct "${R[$s,$t,cpu]}")" "$(errs_detail "$s" "$t")"
    done
    add_row "$s" "tandem/haproxy" \
        "$(ratio "${R[$s,tandem,rps]}" "${R[$s,haproxy,rps]}")" \
        "$(ratio "${R[$s,tandem,p99_us]}" "${R[$s,haproxy,p99_us]}")" \
        "$(ratio "${R[$s,tandem,mibps]}" "${R[$s,haproxy,mibps]}")" \
        "$(ratio "${R[$s,tandem,rss_kib]}" "${R[$s,haproxy,rss_kib]}")" \
        "$(ratio "${R[$s,tandem,cpu]}" "${R[$s,haproxy,cpu]}")" \
        ""
done

# Whole-CPU load during each measured run (every process on the machine, not only ours):
# tells whether the proxy or the load side (nginx + wrk) was the bottleneck.
# shellcheck disable=SC2034 # passed by name to print_*_table
CPU_HEADER=(scenario target "CPU $LOAD_CPU busy (nginx+wrk)" "CPU $LOAD_CPU steal" "CPU $PROXY_CPU busy (proxy)" "CPU $PROXY_CPU steal" "proxy CPU" "proxy waited for CPU")
CPU_ROWS=()
for s in "${SCENARIOS[@]}"; do
    for t in "${TARGETS[@]}"; do
        wanted "$s" "$t" || continue
        CPU_ROWS+=("$s"$'\t'"$t"$'\t'"$(pct "${R[$s,$t,load_busy]}")"$'\t'"$(pct "${R[$s,$t,load_steal]}")"$'\t'"$(pct "${R[$s,$t,proxy_busy]}")"$'\t'"$(pct "${R[$s,$t,proxy_steal]}")"$'\t'"$(pct "${R[$s,$t,cpu]}")"$'\t'"$(pct "${R[$s,$t,runq]}")")
    done
done

echo
print_text_table HEADER ROWS
echo
echo "ratios: tandem ÷ HAProxy (req/s, MiB/s: higher is better; p99, RSS, CPU: lower is better)"
if [ "$PIN" = 1 ]; then
    echo
    print_text_table CPU_HEADER CPU_ROWS
fi

TANDEM_THREADS="$(threads_of "$PID_tandemd")"
HAPROXY_THREADS="$(threads_of "$PID_haproxy")"
# Stop tandemd now, so that its log shows the shutdown too and its exit status is known.
stop_pid "$PID_tandemd"
tandem_exit="$STOPPED_STATUS"

# ---------------------------------------------------------------- Markdown + logs
STAMP="$(date +%Y%m%d-%H%M%S)"
mkdir -p "$ROOT/bench/results"
MD="$ROOT/bench/results/l4-$STAMP.md"
TLOG="$ROOT/bench/results/l4-$STAMP-tandemd.log"
cp "$TMP/tandem/tandemd.log" "$TLOG"
tandem_problems="$(grep -cE ' (WARN|ERROR) ' "$TMP/tandem/tandemd.log" || true)"
haproxy_lines="$(grep -cv '^$' "$TMP/haproxy.log" || true)"
nginx_problems="$(grep -cE '\[(warn|error|crit|alert|emerg)\]' "$TMP/nginx/error.log" 2>/dev/null || true)"
{
    echo "# tandem L4 benchmark, $(date '+%Y-%m-%d %H:%M:%S %Z')"
    echo
    echo "Command: \`bench/l4.sh --duration $DURATION --connections $CONNECTIONS --threads $THREADS --warmup $WARMUP --rounds $ROUNDS$([ "$PIN" = 0 ] && echo " --no-pin")$([ "$SPLICE" = 1 ] && echo " --haproxy-splice")\`"
    echo
    echo "- machine: $NCPU CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), Linux $(uname -r)"
    echo "- tandemd: $("$TANDEMD" --version), binary built $(date -r "$TANDEMD" '+%Y-%m-%d %H:%M:%S %Z') (checkout at $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo "?")$(cd "$ROOT" && [ -n "$(git status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ] && echo ", with uncommitted changes")$([ -n "$STALE" ] && echo "; **the binary is $STALE**")), TOKIO_WORKER_THREADS=1 ($TANDEM_THREADS threads: the main thread, which only waits for signals, and one worker)"
    echo "- $("$HAPROXY" -v | head -1 | sed 's/ - https.*//'), mode tcp, nbthread 1 ($HAPROXY_THREADS thread)$([ "$SPLICE" = 1 ] && echo "; haproxy-splice adds option splice-auto")"
    echo "- $("$NGINX" -v 2>&1 | sed 's/^nginx version: //') backend, 1 worker, sendfile on, keepalive_requests 100000000"
    echo "- $("$WRK" --version 2>&1 | head -1 | sed 's/ Copyright.*//'): -t $THREADS -c $CONNECTIONS -d ${DURATION}s --latency, after a ${WARMUP}s warm-up per target"
    echo "- pinning: $([ "$PIN" = 1 ] && echo "proxies on CPU $PROXY_CPU, nginx and wrk on CPU $LOAD_CPU (taskset)" || echo "none")"
    echo "- scenarios: small = GET /ok (3-byte body, keep-alive); 1mib = GET /1m (1 MiB static file, keep-alive)"
    echo "- peak RSS: VmHWM of the proxy process, reset before the measured run; proxy CPU: its utime+stime over the run ÷ wall time"
    echo
    print_md_table HEADER ROWS
    echo
    echo "Ratios are tandem ÷ HAProxy: for req/s and MiB/s higher is better; for p99, RSS and CPU lower is better."
    if [ "$ROUNDS" -gt 1 ]; then
        echo
        echo "The table shows the median of $ROUNDS rounds (errors: the sum). Every round:"
        echo
        # shellcheck disable=SC2034 # passed by name to print_*_table
        ROUND_HEADER=(scenario target round "req/s" p99 "MiB/s" errors)
        print_md_table ROUND_HEADER ROUND_ROWS
    fi
    if [ "$PIN" = 1 ]; then
        echo
        echo "Load of the two CPUs during each measured run (all processes on the machine, softirq included; steal = time taken by the hypervisor)."
        echo "\"proxy waited for CPU\": time the proxy's threads were runnable but not running (/proc/PID/task/*/schedstat), as a share of the run: other work on its CPU delayed it."
        echo
        print_md_table CPU_HEADER CPU_ROWS
    fi
    echo
    echo "tandemd exit status after SIGTERM: $tandem_exit."
    echo
    echo "Logs: tandemd wrote $tandem_problems WARN/ERROR lines (full log: \`$(basename "$TLOG")\`);" \
        "haproxy wrote $haproxy_lines lines; nginx wrote $nginx_problems warn-or-worse lines."
    if [ "$tandem_problems" -gt 0 ]; then
        echo
        echo '```'
        grep -E ' (WARN|ERROR) ' "$TMP/tandem/tandemd.log" | head -20
        echo '```'
    fi
    if [ "$haproxy_lines" -gt 0 ]; then
        echo
        echo '```'
        head -20 "$TMP/haproxy.log"
        echo '```'
    fi
    echo
    echo "## Raw wrk output"
    echo
    cat "$RAW"
} >"$MD"

echo "Markdown: ${MD#"$ROOT"/}"
echo "tandemd log: ${TLOG#"$ROOT"/} ($tandem_problems WARN/ERROR lines, exit status $tandem_exit after SIGTERM)"
