#!/usr/bin/env bash
# L4 (TCP) benchmark: tandem's TCP listener against HAProxy in `mode tcp`, both in front of
# the same nginx backend, all on 127.0.0.1. A benchmark for people to read, not a test: it
# never fails on a number, only when something could not be started or measured.
#
# Usage: bench/l4.sh [--duration 10] [--connections 50] [--threads 1] [--warmup 2]
#                    [--proxy-cpu 1] [--load-cpu 0] [--no-pin] [--base-port 18080]
#                    [--haproxy-splice] [--keep-tmp]
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
KEEP_TMP=0
TANDEMD="${TANDEMD:-$ROOT/target/release/tandemd}"

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

die() {
    echo "bench/l4.sh: $*" >&2
    exit 1
}

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

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
    --keep-tmp) KEEP_TMP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
for v in DURATION CONNECTIONS THREADS WARMUP PROXY_CPU LOAD_CPU BASE_PORT; do
    is_uint "${!v}" || die "--$(echo "$v" | tr 'A-Z_' 'a-z-') must be a whole number, got '${!v}'"
done
[ "$DURATION" -ge 1 ] || die "--duration must be at least 1"
[ "$THREADS" -ge 1 ] || die "--threads must be at least 1"
[ "$CONNECTIONS" -ge "$THREADS" ] || die "--connections must be at least --threads (wrk needs one per thread)"
[ "$BASE_PORT" -ge 1024 ] && [ "$BASE_PORT" -le 65500 ] || die "--base-port must be in 1024..65500"

# ---------------------------------------------------------------- prerequisites
missing_pkgs=()
for tool in haproxy:haproxy nginx:nginx-light wrk:wrk curl:curl taskset:util-linux ss:iproute2; do
    cmd="${tool%%:*}"
    # nginx and haproxy live in /usr/sbin, which is not always on a user's PATH.
    if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
        missing_pkgs+=("${tool#*:}")
    fi
done
if [ "${#missing_pkgs[@]}" -gt 0 ]; then
    die "missing: ${missing_pkgs[*]}. On Debian: apt-get install -y ${missing_pkgs[*]}"
fi
tool_path() { command -v "$1" 2>/dev/null || echo "/usr/sbin/$1"; }
HAPROXY="$(tool_path haproxy)"
NGINX="$(tool_path nginx)"
WRK="$(tool_path wrk)"
[ -x "$TANDEMD" ] || die "no tandemd binary at $TANDEMD. Build it: cargo build --release -p tandemd (or set TANDEMD=...)"

NCPU="$(nproc)"
if [ "$PIN" = 1 ]; then
    if [ "$NCPU" -lt 2 ]; then
        echo "bench/l4.sh: only $NCPU CPU available; running without pinning" >&2
        PIN=0
    elif [ "$PROXY_CPU" -ge "$NCPU" ] || [ "$LOAD_CPU" -ge "$NCPU" ]; then
        die "--proxy-cpu/--load-cpu must be below $NCPU"
    fi
fi
on_cpu() { # on_cpu CPU CMD...: exec CMD (same PID) pinned to CPU, or unpinned with --no-pin
    local cpu="$1"
    shift
    if [ "$PIN" = 1 ]; then
        exec taskset -c "$cpu" "$@"
    else
        exec "$@"
    fi
}

# ---------------------------------------------------------------- ports
P_BACKEND=$BASE_PORT
P_HAPROXY=$((BASE_PORT + 1))
P_TANDEM=$((BASE_PORT + 2))
P_SPLICE=$((BASE_PORT + 3))
ports=("$P_BACKEND" "$P_HAPROXY" "$P_TANDEM")
[ "$SPLICE" = 1 ] && ports+=("$P_SPLICE")
for p in "${ports[@]}"; do
    if [ -n "$(ss -Hltn "( sport = :$p )" 2>/dev/null)" ]; then
        die "port $p is already listened on (ss -ltnp 'sport = :$p'); pick other ports with --base-port"
    fi
done

# ---------------------------------------------------------------- temp dir, processes, cleanup
TMP="$(mktemp -d "${TMPDIR:-/tmp}/tandem-l4-bench.XXXXXX")"
declare -a PIDS=()   # everything we started, in start order
declare -A NAME_OF=()

stop_pid() { # TERM, then KILL after 5 s; also the direct children (nginx's worker)
    local pid="$1" kids="" i
    kill -0 "$pid" 2>/dev/null || return 0
    kids="$(cat "/proc/$pid/task/$pid/children" 2>/dev/null || true)"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    for k in $kids; do
        kill -0 "$k" 2>/dev/null && kill -KILL "$k" 2>/dev/null || true
    done
}

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[$i]}"
    done
    if [ "$KEEP_TMP" = 1 ]; then
        echo "temporary files kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start() { # start NAME CPU LOGFILE [ENV=VAL...] CMD...: background, PID recorded
    local name="$1" cpu="$2" log="$3"
    shift 3
    (on_cpu "$cpu" "$@") >"$log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    NAME_OF[$pid]="$name"
    eval "PID_$name=$pid"
}

wait_port() { # wait_port PORT PID NAME LOG: until something accepts on 127.0.0.1:PORT
    local port="$1" pid="$2" name="$3" log="$4" i
    for i in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || { tail -20 "$log" >&2; die "$name exited at start (log above)"; }
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    tail -20 "$log" >&2
    die "$name did not listen on 127.0.0.1:$port within 10 s"
}

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
wait_port "$P_BACKEND" "$PID_nginx" nginx "$TMP/nginx/error.log"

# ---------------------------------------------------------------- proxy: HAProxy (mode tcp)
haproxy_config() { # haproxy_config PORT EXTRA_DEFAULTS_LINE
    cat <<EOF
global
    nbthread 1
    maxconn 20000
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
wait_port "$P_HAPROXY" "$PID_haproxy" haproxy "$TMP/haproxy.log"
if [ "$SPLICE" = 1 ]; then
    haproxy_config "$P_SPLICE" "option splice-auto" >"$TMP/haproxy-splice.cfg"
    start haproxy_splice "$PROXY_CPU" "$TMP/haproxy-splice.log" "$HAPROXY" -f "$TMP/haproxy-splice.cfg" -db
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
max_connections = 20000

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
cat >"$TMP/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKRESULT requests=%.0f duration_us=%.0f bytes=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f connect=%.0f read=%.0f write=%.0f status=%.0f timeout=%.0f\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
EOF

CLK_TCK="$(getconf CLK_TCK)"
cpu_ticks() { # utime+stime of a whole process (all threads), in clock ticks
    local pid="$1"
    [ -n "$pid" ] || { echo 0; return; }
    # The command name (field 2) is in parentheses and may hold spaces: cut after ')'.
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat"
}
vm_hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
threads_of() { awk '/^Threads:/ { print $2 }' "/proc/$1/status"; }

run_wrk() { # run_wrk SECONDS URL OUTFILE
    local secs="$1" url="$2" out="$3"
    # wrk ends on its own after -d; the outer timeout only guards against a hang.
    (on_cpu "$LOAD_CPU" timeout --kill-after=5 $((secs + 30)) \
        "$WRK" -t "$THREADS" -c "$CONNECTIONS" -d "${secs}s" --latency -s "$TMP/report.lua" "$url") \
        >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed against $url"; }
}

declare -A URL_PATH=([small]=/ok [1mib]=/1m)
SCENARIOS=(small 1mib)
declare -A R=() # R[scenario,target,field]
RAW="$TMP/raw.md"
: >"$RAW"

n_runs=$((${#SCENARIOS[@]} * ${#TARGETS[@]}))
echo "tandem L4 benchmark: ${#SCENARIOS[@]} scenarios x ${#TARGETS[@]} targets, ${WARMUP}s warm-up + ${DURATION}s each (about $((n_runs * (WARMUP + DURATION)))s)"
echo "wrk -t $THREADS -c $CONNECTIONS; pinning: $([ "$PIN" = 1 ] && echo "proxies on CPU $PROXY_CPU, nginx and wrk on CPU $LOAD_CPU" || echo off)"
echo "tandemd $PID_tandemd threads=$(threads_of "$PID_tandemd"), haproxy $PID_haproxy threads=$(threads_of "$PID_haproxy")"

for s in "${SCENARIOS[@]}"; do
    for t in "${TARGETS[@]}"; do
        # haproxy-splice only matters for the bulk transfer.
        [ "$t" = haproxy-splice ] && [ "$s" = small ] && continue
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
        out="$TMP/wrk-$s-$t.out"
        run_wrk "$DURATION" "$url" "$out"
        c1="$(cpu_ticks "$pid")"
        if [ -n "$pid" ]; then
            kill -0 "$pid" 2>/dev/null || die "$t (pid $pid) died during the run"
            R[$s,$t,rss_kib]="$(vm_hwm_kib "$pid")"
        else
            R[$s,$t,rss_kib]=""
        fi
        line="$(grep '^WRKRESULT ' "$out")" || { cat "$out" >&2; die "no result from wrk against $url"; }
        for kv in ${line#WRKRESULT }; do
            R[$s,$t,${kv%%=*}]="${kv#*=}"
        done
        secs="$(awk -v us="${R[$s,$t,duration_us]}" 'BEGIN { printf "%.6f", us / 1e6 }')"
        R[$s,$t,rps]="$(awk -v n="${R[$s,$t,requests]}" -v d="$secs" 'BEGIN { printf "%.0f", n / d }')"
        R[$s,$t,mibps]="$(awk -v b="${R[$s,$t,bytes]}" -v d="$secs" 'BEGIN { printf "%.1f", b / d / 1048576 }')"
        R[$s,$t,p99_ms]="$(awk -v u="${R[$s,$t,p99_us]}" 'BEGIN { printf "%.2f", u / 1000 }')"
        R[$s,$t,errors]=$((${R[$s,$t,connect]} + ${R[$s,$t,read]} + ${R[$s,$t,write]} + ${R[$s,$t,status]} + ${R[$s,$t,timeout]}))
        if [ -n "$pid" ]; then
            R[$s,$t,cpu]="$(awk -v a="$c0" -v b="$c1" -v hz="$CLK_TCK" -v d="$secs" 'BEGIN { printf "%.0f%%", (b - a) / hz / d * 100 }')"
        else
            R[$s,$t,cpu]=""
        fi
        echo "${R[$s,$t,rps]} req/s, p99 ${R[$s,$t,p99_ms]} ms, ${R[$s,$t,mibps]} MiB/s, errors ${R[$s,$t,errors]}"
        {
            echo "#### $s → $t"
            echo
            echo '```'
            grep -v '^WRKRESULT ' "$out"
            echo '```'
            echo
        } >>"$RAW"
    done
done

# ---------------------------------------------------------------- the table
fmt_rss() { [ -n "$1" ] && awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }' || echo "-"; }
ratio() { # ratio A B: A/B as "0.97×", or "-" when either is missing or B is zero
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f×\n", a / b }'
}
errs_detail() { # "0" or "12 (read 10, timeout 2)"
    local s="$1" t="$2" d="" k
    for k in connect read write status timeout; do
        [ "${R[$s,$t,$k]}" -gt 0 ] && d="$d${d:+, }$k ${R[$s,$t,$k]}"
    done
    [ -n "$d" ] && echo "${R[$s,$t,errors]} ($d)" || echo "0"
}

HEADER=(scenario target "req/s" "p99" "MiB/s" "peak RSS" "proxy CPU" "errors")
ROWS=()
add_row() { local IFS=$'\t'; ROWS+=("$*"); }
for s in "${SCENARIOS[@]}"; do
    for t in "${TARGETS[@]}"; do
        [ "$t" = haproxy-splice ] && [ "$s" = small ] && continue
        add_row "$s" "$t" "${R[$s,$t,rps]}" "${R[$s,$t,p99_ms]} ms" "${R[$s,$t,mibps]}" \
            "$(fmt_rss "${R[$s,$t,rss_kib]}")" "${R[$s,$t,cpu]:--}" "$(errs_detail "$s" "$t")"
    done
    add_row "$s" "tandem/haproxy" \
        "$(ratio "${R[$s,tandem,rps]}" "${R[$s,haproxy,rps]}")" \
        "$(ratio "${R[$s,tandem,p99_us]}" "${R[$s,haproxy,p99_us]}")" \
        "$(ratio "${R[$s,tandem,mibps]}" "${R[$s,haproxy,mibps]}")" \
        "$(ratio "${R[$s,tandem,rss_kib]}" "${R[$s,haproxy,rss_kib]}")" \
        "$(ratio "${R[$s,tandem,cpu]%\%}" "${R[$s,haproxy,cpu]%\%}")" \
        ""
done

print_text_table() {
    {
        (IFS=$'\t'; echo "${HEADER[*]}")
        printf '%s\n' "${ROWS[@]}"
    } | awk -F'\t' '
        { for (i = 1; i <= NF; i++) { cell[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } n = NR; if (NF > nf) nf = NF }
        END {
            for (r = 1; r <= n; r++) {
                line = ""
                for (i = 1; i <= nf; i++) {
                    # Left-align the two names, right-align the numbers.
                    f = (i <= 2) ? "%-" w[i] "s" : "%" w[i] "s"
                    line = line (i > 1 ? "  " : "") sprintf(f, cell[r, i])
                }
                sub(/ +$/, "", line); print line
                if (r == 1) { s = ""; for (i = 1; i <= nf; i++) { s = s (i > 1 ? "  " : ""); for (j = 0; j < w[i]; j++) s = s "-" } print s }
            }
        }'
}
print_md_table() {
    local row
    printf '| %s ' "${HEADER[@]}"
    echo "|"
    echo "|$(printf -- '---|%.0s' "${HEADER[@]}")"
    for row in "${ROWS[@]}"; do
        echo "| ${row//$'\t'/ | } |"
    done
}

echo
print_text_table
echo
echo "ratios: tandem ÷ HAProxy (req/s, MiB/s: higher is better; p99, RSS, CPU: lower is better)"

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
    echo "Command: \`bench/l4.sh --duration $DURATION --connections $CONNECTIONS --threads $THREADS --warmup $WARMUP$([ "$PIN" = 0 ] && echo " --no-pin")$([ "$SPLICE" = 1 ] && echo " --haproxy-splice")\`"
    echo
    echo "- machine: $NCPU CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), Linux $(uname -r)"
    echo "- tandemd: $("$TANDEMD" --version) ($(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo "no git")$(cd "$ROOT" && [ -n "$(git status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ] && echo ", with local changes")), TOKIO_WORKER_THREADS=1, $(threads_of "$PID_tandemd") threads at the end"
    echo "- $("$HAPROXY" -v | head -1 | sed 's/ - https.*//'), mode tcp, nbthread 1$([ "$SPLICE" = 1 ] && echo "; haproxy-splice adds option splice-auto")"
    echo "- $("$NGINX" -v 2>&1 | sed 's/^nginx version: //') backend, 1 worker, sendfile on, keepalive_requests 100000000"
    echo "- $("$WRK" --version 2>&1 | head -1 | sed 's/ Copyright.*//'): -t $THREADS -c $CONNECTIONS -d ${DURATION}s --latency, after a ${WARMUP}s warm-up per target"
    echo "- pinning: $([ "$PIN" = 1 ] && echo "proxies on CPU $PROXY_CPU, nginx and wrk on CPU $LOAD_CPU (taskset)" || echo "none")"
    echo "- scenarios: small = GET /ok (3-byte body, keep-alive); 1mib = GET /1m (1 MiB static file, keep-alive)"
    echo "- peak RSS: VmHWM of the proxy process, reset before the measured run; proxy CPU: its utime+stime over the run ÷ wall time"
    echo
    print_md_table
    echo
    echo "Ratios are tandem ÷ HAProxy: for req/s and MiB/s higher is better; for p99, RSS and CPU lower is better."
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
echo "tandemd log: ${TLOG#"$ROOT"/} ($tandem_problems WARN/ERROR lines)"
