#!/usr/bin/env bash
# Response compression benchmark: tandem's `compression` against nginx's `gzip on`, both
# reverse proxies in front of the same nginx backend serving a ~100 KB JSON document
# uncompressed, on 127.0.0.1. What it answers: how much CPU each proxy spends per
# compressed response, and how small the response gets. A benchmark for people to read,
# not a test: it never fails on a number, only when something could not be started or
# measured.
#
# Usage: bench/compression.sh [--duration 10] [--connections 16] [--threads 1]
#                             [--warmup 2] [--size 100] [--gzip-level 6] [--br-level 4]
#                             [--proxy-cpu 1] [--load-cpu 0] [--no-pin]
#                             [--base-port 18280] [--keep-tmp]
#
#   --duration S      seconds of each measured run (default 10)
#   --connections N   wrk connections, keep-alive (default 16); --threads N: wrk threads
#   --warmup S        seconds of an unmeasured run before each measured one (default 2)
#   --size K          the JSON document's size in KB (default 100)
#   --gzip-level N    gzip level of both proxies (default 6: nginx gzip_comp_level 6,
#                     tandem level.gzip = 6)
#   --br-level N      tandem's brotli level (default 4, tandem's default)
#   --proxy-cpu/--load-cpu  the CPU of the proxies, and of the backend and wrk (default 1, 0)
#   --no-pin          no taskset at all
#   --base-port P     ports P (backend nginx), P+1 (nginx proxy), P+2 (tandem)
#   --keep-tmp        keep the temporary directory (configs, logs, raw output)
#
# Scenarios (each against nginx and tandem, one worker each, pinned to --proxy-cpu):
#   identity  Accept-Encoding absent: the proxying cost alone, the baseline
#   gzip      Accept-Encoding: gzip, at --gzip-level on both
#   br        Accept-Encoding: br: tandem only (nginx needs the third-party ngx_brotli
#             module, which Debian's nginx does not have); its nginx row is "-"
# Reported per scenario and proxy: req/s, p99, the proxy's CPU time per request (µs, from
# /proc/PID/stat: user + system over the measured run), the compressed body size and the
# ratio to the original; then tandem/nginx ratios as in bench/l7.sh (below 1× is tandem
# better for CPU/req, above 1× for req/s). CPU/req minus the identity row is the cost of
# compressing itself.
#
# Fairness: nginx worker_processes 1, gzip_types application/json, gzip_min_length 1024,
# gzip_proxied any (nginx compresses proxied responses only with it), gzip_vary on,
# gzip_buffers left at their default; keep-alive to the backend for both. tandem: one HTTP
# worker, TOKIO_WORKER_THREADS=1, access_log = false, `compression` with the same types
# and min_size.
#
# Results: one table on stdout and the same as Markdown in
# bench/results/compression-<timestamp>.md.
#
# Needs: nginx (nginx-light is enough), wrk, curl, taskset, ss, and the release binary
# (cargo build --release -p tandemd), or TANDEMD=/path/to/tandemd.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"

DURATION=10
CONNECTIONS=16
THREADS=1
WARMUP=2
SIZE_KB=100
GZIP_LEVEL=6
BR_LEVEL=4
PROXY_CPU=1
LOAD_CPU=0
PIN=1
BASE_PORT=18280
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
    --size) SIZE_KB="${2:?}"; shift 2 ;;
    --gzip-level) GZIP_LEVEL="${2:?}"; shift 2 ;;
    --br-level) BR_LEVEL="${2:?}"; shift 2 ;;
    --proxy-cpu) PROXY_CPU="${2:?}"; shift 2 ;;
    --load-cpu) LOAD_CPU="${2:?}"; shift 2 ;;
    --no-pin) PIN=0; shift ;;
    --base-port) BASE_PORT="${2:?}"; shift 2 ;;
    --keep-tmp) KEEP_TMP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
for v in DURATION CONNECTIONS THREADS WARMUP SIZE_KB GZIP_LEVEL BR_LEVEL PROXY_CPU LOAD_CPU BASE_PORT; do
    is_uint "${!v}" || die "--$(echo "$v" | tr 'A-Z_' 'a-z-') must be a whole number, got '${!v}'"
done
[ "$DURATION" -ge 1 ] || die "--duration must be at least 1"
[ "$THREADS" -ge 1 ] && [ "$CONNECTIONS" -ge "$THREADS" ] || die "--connections must be at least --threads, which must be at least 1"
[ "$SIZE_KB" -ge 2 ] && [ "$SIZE_KB" -le 100000 ] || die "--size must be in 2..100000 (KB)"
[ "$GZIP_LEVEL" -ge 1 ] && [ "$GZIP_LEVEL" -le 9 ] || die "--gzip-level must be in 1..9"
[ "$BR_LEVEL" -le 11 ] || die "--br-level must be in 0..11"
[ "$BASE_PORT" -ge 1024 ] && [ "$BASE_PORT" -le 65500 ] || die "--base-port must be in 1024..65500"

require_tools nginx:nginx-light wrk:wrk curl:curl taskset:util-linux ss:iproute2
NGINX="$(tool_path nginx)"
WRK="$(tool_path wrk)"
check_tandemd
check_pinning

P_BACKEND=$BASE_PORT
P_NGINX=$((BASE_PORT + 1))
P_TANDEM=$((BASE_PORT + 2))
check_ports_free "$P_BACKEND" "$P_NGINX" "$P_TANDEM"

make_tmp tandem-compression-bench
write_report_lua "$TMP/report.lua"
chmod 0755 "$TMP"

# ---------------------------------------------------------------- the document
# A JSON array of records, as an API answers: repetitive keys, varied values.
mkdir -p "$TMP/www"
awk -v kb="$SIZE_KB" 'BEGIN {
    srand(42); printf "["; n = 0; size = 1
    while (size < kb * 1000) {
        rec = sprintf("%s{\"id\":%d,\"name\":\"user-%d\",\"email\":\"user%d@example.com\",\"score\":%.3f,\"active\":%s,\"tags\":[\"t%d\",\"t%d\"]}",
            (n ? "," : ""), n, n, n * 7919 % 100000, rand() * 1000, (rand() < 0.5 ? "true" : "false"), int(rand() * 50), int(rand() * 50))
        printf "%s", rec; size += length(rec); n++
    }
    print "]" }' >"$TMP/www/data.json"
ORIGINAL_BYTES="$(stat -c %s "$TMP/www/data.json")"

# ---------------------------------------------------------------- nginx: backend and proxy
nginx_top() { # nginx_top DIR
    cat <<EOF
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $1/client_body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 100000000;
    types { application/json json; }
EOF
}
start_nginx() { # start_nginx NAME DIR CPU PORT
    local name="$1" dir="$2" cpu="$3" port="$4"
    "$NGINX" -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" \
        || { cat "$dir/error.log" >&2 || true; die "$name rejected its config"; }
    start "$name" "$cpu" "$dir/stderr.log" \
        "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;'
    wait_port "$port" "$(eval echo "\$PID_$name")" "$name" "$dir/error.log"
}

mkdir -p "$TMP/backend" "$TMP/nginx" "$TMP/tandem"
{
    nginx_top "$TMP/backend"
    cat <<EOF
    gzip off;
    server {
        listen 127.0.0.1:$P_BACKEND backlog=4096;
        location / { root $TMP/www; etag on; }
    }
}
EOF
} >"$TMP/backend/nginx.conf"
start_nginx backend "$TMP/backend" "$LOAD_CPU" "$P_BACKEND"

{
    nginx_top "$TMP/nginx"
    cat <<EOF
    upstream backend {
        server 127.0.0.1:$P_BACKEND;
        keepalive 256;
    }
    gzip on;
    gzip_comp_level $GZIP_LEVEL;
    gzip_types application/json;
    gzip_min_length 1024;
    gzip_proxied any;
    gzip_vary on;
    server {
        listen 127.0.0.1:$P_NGINX backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
EOF
} >"$TMP/nginx/nginx.conf"
start_nginx nginx "$TMP/nginx" "$PROXY_CPU" "$P_NGINX"
# shellcheck disable=SC2154 # set by lib.sh start() through eval
NGINX_WORKER="$(cat "/proc/$PID_nginx/task/$PID_nginx/children" 2>/dev/null | tr -s ' ' '\n' | awk 'NF' | paste -sd' ')"
[ "$(wc -w <<<"$NGINX_WORKER")" = 1 ] || die "expected one nginx proxy worker under pid $PID_nginx, found '$NGINX_WORKER'"

# ---------------------------------------------------------------- tandem
cat >"$TMP/tandem/tandem.toml" <<EOF
[node]
id = "bench"
data_dir = "$TMP/tandem/data"
admin_socket = "$TMP/tandem/admin.sock"
drain_timeout = "1s"

[[listener]]
name = "http"
protocol = "http"
bind = "127.0.0.1:$P_TANDEM"
pool = "nginx"

[listener.http]
access_log = false
workers = 1
forwarded = { x_forwarded_for = true, x_forwarded_proto = false, x_forwarded_host = false, forwarded = false, via = false }

[listener.compression]
algorithms = ["br", "gzip"]
content_types = ["application/json"]
min_size = 1024
level = { gzip = $GZIP_LEVEL, br = $BR_LEVEL }

[[pool]]
name = "nginx"

[pool.http]
max_idle_per_backend = 256

[[pool.backend]]
id = "nginx"
address = "127.0.0.1:$P_BACKEND"
EOF
"$TANDEMD" check-config "$TMP/tandem/tandem.toml" >"$TMP/tandem/check.log" 2>&1 \
    || { cat "$TMP/tandem/check.log" >&2; die "tandemd rejected its config"; }
start tandemd "$PROXY_CPU" "$TMP/tandem/tandemd.log" \
    env TOKIO_WORKER_THREADS=1 RUST_LOG=info NO_COLOR=1 "$TANDEMD" run --config "$TMP/tandem/tandem.toml"
# shellcheck disable=SC2154 # set by lib.sh start() through eval
wait_port "$P_TANDEM" "$PID_tandemd" tandemd "$TMP/tandem/tandemd.log"

# ---------------------------------------------------------------- checks before measuring
body_size() { # body_size PORT ENCODING: bytes of the body as sent (compressed), checked
    local port="$1" enc="$2" got
    local args=(-sS --max-time 5 --noproxy '*' -o "$TMP/body" -D "$TMP/head")
    [ "$enc" = identity ] || args+=(-H "Accept-Encoding: $enc")
    curl "${args[@]}" "http://127.0.0.1:$port/data.json" || die "curl to port $port failed"
    got="$(awk -F': *' 'tolower($1) == "content-encoding" { gsub(/\r/, "", $2); print $2 }' "$TMP/head")"
    [ "${got:-identity}" = "$enc" ] || die "port $port answered Content-Encoding '${got:-identity}' to Accept-Encoding $enc"
    stat -c %s "$TMP/body"
}

# ---------------------------------------------------------------- runs
accept_lua() { # accept_lua ENCODING FILE: the report script, plus the header
    cp "$TMP/report.lua" "$2"
    [ "$1" = identity ] || printf 'wrk.headers["Accept-Encoding"] = "%s"\n' "$1" >>"$2"
}

# shellcheck disable=SC2034 # read by print_text_table and print_md_table (namerefs)
HEADER=(scenario target "req/s" p99 "µs CPU/req" "body bytes" "size ratio")
ROWS=()
declare -A REQS CPU
for scenario in identity gzip br; do
    accept_lua "$scenario" "$TMP/$scenario.lua"
    for target in nginx tandem; do
        if [ "$target" = nginx ]; then port=$P_NGINX; pids="$NGINX_WORKER"; else port=$P_TANDEM; pids="$PID_tandemd"; fi
        if [ "$scenario" = br ] && [ "$target" = nginx ]; then
            ROWS+=("$scenario"$'\t'"$target"$'\t-\t-\t-\t-\tno brotli module')
            continue
        fi
        bytes="$(body_size "$port" "$scenario")"
        url="http://127.0.0.1:$port/data.json"
        [ "$WARMUP" = 0 ] || run_wrk "$WARMUP" "$url" "$TMP/warmup.out" "$TMP/$scenario.lua"
        before="$(cpu_ticks "$pids")"
        out="$TMP/$scenario-$target.out"
        run_wrk "$DURATION" "$url" "$out" "$TMP/$scenario.lua"
        after="$(cpu_ticks "$pids")"
        line="$(grep '^WRKRESULT ' "$out")" || { cat "$out" >&2; die "no result from $scenario against $target"; }
        declare -A r=()
        for kv in ${line#WRKRESULT }; do r[${kv%%=*}]="${kv#*=}"; done
        [ "${r[status]}${r[connect]}${r[read]}${r[timeout]}" = 0000 ] \
            || warn "$scenario against $target: errors (status ${r[status]}, connect ${r[connect]}, read ${r[read]}, timeout ${r[timeout]})"
        rps="$(awk -v n="${r[requests]}" -v us="${r[duration_us]}" 'BEGIN { printf "%.0f", n / (us / 1e6) }')"
        cpu_us="$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="${r[requests]}" 'BEGIN { if (n > 0) printf "%.1f", t / hz * 1e6 / n }')"
        p99="$(awk -v us="${r[p99_us]}" 'BEGIN { printf "%.2f ms", us / 1000 }')"
        size_ratio="$(awk -v a="$bytes" -v b="$ORIGINAL_BYTES" 'BEGIN { printf "%.3f", a / b }')"
        REQS[$scenario.$target]="$rps"
        CPU[$scenario.$target]="$cpu_us"
        ROWS+=("$scenario"$'\t'"$target"$'\t'"$rps"$'\t'"$p99"$'\t'"$cpu_us"$'\t'"$bytes"$'\t'"$size_ratio")
    done
    if [ -n "${REQS[$scenario.nginx]:-}" ]; then
        ROWS+=("$scenario"$'\t'"tandem/nginx"$'\t'"$(ratio "${REQS[$scenario.tandem]}" "${REQS[$scenario.nginx]}")"$'\t-\t'"$(ratio "${CPU[$scenario.tandem]}" "${CPU[$scenario.nginx]}")"$'\t-\t-')
    fi
done
# The cost of compressing alone: CPU/req over the identity baseline of the same proxy.
for target in nginx tandem; do
    for scenario in gzip br; do
        [ -n "${CPU[$scenario.$target]:-}" ] || continue
        ROWS+=("$scenario − identity"$'\t'"$target"$'\t-\t-\t'"$(awk -v a="${CPU[$scenario.$target]}" -v b="${CPU[identity.$target]}" 'BEGIN { printf "%.1f", a - b }')"$'\t-\t-')
    done
done

# ---------------------------------------------------------------- report
echo
echo "Response compression, ${ORIGINAL_BYTES}-byte JSON, gzip level $GZIP_LEVEL, br level $BR_LEVEL, $CONNECTIONS connections, ${DURATION}s per run"
print_text_table HEADER ROWS
mkdir -p "$ROOT/bench/results"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
REPORT="$ROOT/bench/results/compression-$STAMP.md"
{
    echo "# Response compression, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- document: ${ORIGINAL_BYTES}-byte JSON from an nginx backend (gzip off)"
    echo "- nginx: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), worker_processes 1, gzip_comp_level $GZIP_LEVEL"
    echo "- tandemd: $(tandemd_description), TOKIO_WORKER_THREADS=1, workers = 1, level gzip $GZIP_LEVEL, br $BR_LEVEL"
    echo "- wrk: $CONNECTIONS connections, $THREADS thread(s), ${DURATION}s runs after ${WARMUP}s warm-up; pinning: $([ "$PIN" = 1 ] && echo "proxies on CPU $PROXY_CPU, backend and wrk on CPU $LOAD_CPU" || echo none)"
    echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    print_md_table HEADER ROWS
} >"$REPORT"
echo
echo "report: $REPORT"
