#!/usr/bin/env bash
# L7 (HTTP) benchmark: tandem's HTTP listener against HAProxy in `mode http` and nginx as a
# reverse proxy, all three in front of the same nginx backend, on 127.0.0.1. A benchmark for
# people to read, not a test: it never fails on a number, only when something could not be
# started or measured.
#
# Usage: bench/l7.sh [--duration 10] [--connections 50] [--threads 1] [--warmup 2]
#                    [--rounds 1] [--scenarios idle,http-ka,h2,tls-new,tls-full,tls-ka]
#                    [--streams 10] [--idle-connections 5000] [--idle-hold 2]
#                    [--key rsa|ec] [--full-clients 16] [--url-host localhost]
#                    [--proxy-cpu 1] [--load-cpu 0] [--workers 1] [--no-pin]
#                    [--base-port 18180] [--keep-tmp]
#
#   --duration S      seconds of each measured run (default 10)
#   --connections N   wrk and h2load connections (default 50); --threads N: their threads
#                     (default 1)
#   --streams N       concurrent streams per h2load connection in h2 (default 10)
#   --idle-connections N  connections opened and held in idle (default 5000, at most 6000)
#   --idle-hold S     seconds idle holds them before reading the proxies' RSS (default 2)
#   --warmup S        seconds of an unmeasured run before each measured one (default 2)
#   --rounds N        repeat the whole matrix N times, each round starting with another
#                     target, and report medians (default 1; use 3+ on a noisy machine)
#   --scenarios LIST  comma-separated subset of the scenarios below (default: all six)
#   --key rsa|ec      the certificate's key: RSA 2048 (default) or ECDSA P-256
#   --full-clients N  parallel `openssl s_time` processes in tls-full (default 16)
#   --url-host NAME   host name wrk puts in the URL, hence in SNI and Host (default
#                     localhost, which must resolve to 127.0.0.1). `--url-host 127.0.0.1`
#                     makes wrk send an IP address as SNI, which RFC 6066 forbids (rustls
#                     logs a warning for each such handshake)
#   --proxy-cpu/--load-cpu  the CPU of the proxies, and of nginx and the load (default 1 and 0)
#   --workers N       the scaling scenario: every proxy with N workers (nginx
#                     worker_processes N, HAProxy nbthread N, tandem `workers = N`), and the
#                     backend nginx with N workers too. Pinned, the proxies get CPUs
#                     --proxy-cpu .. --proxy-cpu+N-1 and the backend and the load
#                     --load-cpu .. --load-cpu+N-1 (the two ranges must not overlap: on a
#                     4-CPU machine, --workers 2 --load-cpu 0 --proxy-cpu 2); give wrk and
#                     h2load as many --threads. The CPU busy columns show the first CPU of
#                     each range. Default 1; idle needs 1 (it reads one process's RSS)
#   --no-pin          no taskset at all
#   --base-port P     ports P..P+11: backend nginx (P, TLS P+4, h2c P+11), HAProxy (P+1, TLS
#                     P+5, h2c P+9), nginx proxy (P+2, TLS P+6, h2c P+10), tandem (P+3, which
#                     also takes h2c, TLS P+7), HAProxy stats (P+8)
#   --keep-tmp        keep the temporary directory (configs, certificate, logs, raw output)
#
# Total time: about rounds x 4 x (number of scenarios) x (warmup + duration) seconds, plus
# a few seconds.
#
# Six scenarios, each against four targets (the backend directly, HAProxy, nginx, tandem):
#   idle      --idle-connections clients (bench/l7_idle.py), one after the other, each sends
#             one GET /ok over HTTP/1.1 and keeps its connection open; all are held for
#             --idle-hold seconds, then closed. Reports the proxy's VmRSS growth per held
#             connection (before the first one and while all are held) and its CPU per
#             connection (open, one request, hold, close). No warm-up run (it would leave
#             freed memory for the measured run to reuse), and it is the first scenario of
#             a round, so round 1 measures memory on a freshly started proxy; later rounds
#             reuse what the first one freed, and their RSS growth reads lower.
#   http-ka   GET /ok (a 3-byte body) over HTTP/1.1 keep-alive: req/s, p50, p99 (wrk --latency)
#   h2        GET /ok from HTTP/2 clients, h2c with prior knowledge (h2load -c --connections
#             -m --streams), HTTP/1.1 from each proxy to the backend: req/s, and p50 and p99
#             from h2load's per-request log. HAProxy takes h2c on a `proto h2` bind, nginx
#             on a `listen ... http2` one, tandem on its usual port
#   tls-new   GET /ok over HTTPS with `Connection: close` on every request (wrk with a Lua
#             script): each request is a new TCP connection and a new TLS handshake, so
#             req/s = handshakes/s. wrk (OpenSSL) offers the session ticket of its previous
#             connection and every target accepts it: these are TLS 1.3 resumptions
#             (PSK + X25519, no certificate, no signature). Latency is from the request's
#             first byte: the handshake is not in it.
#   tls-full  full TLS handshakes: --full-clients parallel `openssl s_time -new` (a new
#             session every time, so certificate and signature), each sending
#             `GET /ok HTTP/1.0` and reading to the close: handshakes/s, no latency
#   tls-ka    GET /ok over HTTPS keep-alive: req/s, p50, p99
# "direct" is the backend nginx itself (with its own TLS listener for the TLS scenarios): the
# load side's ceiling, not a target for the proxies.
#
# Fairness: one worker each, or --workers N each (nginx worker_processes 1, HAProxy
# nbthread 1, tandem `workers = 1` on its HTTP listeners and TOKIO_WORKER_THREADS=1 for the rest of
# tandemd); the proxies are pinned to --proxy-cpu, the backend nginx, wrk and s_time to
# --load-cpu (taskset). Each proxy keeps its connections to the
# backend alive and reuses them (HAProxy `http-reuse always`, no cap on idle connections;
# nginx `upstream { keepalive 1024; }`, `proxy_http_version 1.1` and `Connection ""`;
# tandem `max_idle_per_backend = 1024`: h2's connections x streams requests in flight need
# as many backend connections, and a cap of 64 idle ones made nginx and tandem close and
# reopen backend connections all through h2, which HAProxy did not), adds
# X-Forwarded-For and X-Forwarded-Proto and nothing else it can be told not to (tandem also
# adds X-Request-Id, which it cannot be told not to), logs no requests (tandem:
# `access_log = false`) and runs no health checks. Same certificate, TLS 1.2 and 1.3, server
# defaults for ciphers and session resumption (all three resume, see tls-new).
#
# Results: one table on stdout and the same as Markdown in bench/results/l7-<timestamp>.md
# (with the raw output), plus tandemd's log as bench/results/l7-<timestamp>-tandemd.log.
#
# Needs: haproxy, nginx (nginx-light is enough), wrk, openssl, taskset, curl, ss, h2load
# (nghttp2-client) for h2, python3 for idle, and the
# release binary (cargo build --release -p tandemd), or TANDEMD=/path/to/tandemd.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"

DURATION=10
CONNECTIONS=50
THREADS=1
WARMUP=2
PROXY_CPU=1
LOAD_CPU=0
PIN=1
BASE_PORT=18180
ROUNDS=1
KEEP_TMP=0
SCENARIO_LIST="idle,http-ka,h2,tls-new,tls-full,tls-ka"
STREAMS=10
WORKERS=1
IDLE_CONNECTIONS=5000
IDLE_HOLD=2
KEY=rsa
FULL_CLIENTS=16
URL_HOST=localhost
TANDEMD="${TANDEMD:-$ROOT/target/release/tandemd}"

# die, start, stop_pid, run_wrk, the CPU probes and the tables: shared with bench/l4.sh.
source "$ROOT/bench/lib.sh"

while [ $# -gt 0 ]; do
    case "$1" in
    --duration) DURATION="${2:?}"; shift 2 ;;
    --connections) CONNECTIONS="${2:?}"; shift 2 ;;
    --threads) THREADS="${2:?}"; shift 2 ;;
    --warmup) WARMUP="${2:?}"; shift 2 ;;
    --rounds) ROUNDS="${2:?}"; shift 2 ;;
    --scenarios) SCENARIO_LIST="${2:?}"; shift 2 ;;
    --streams) STREAMS="${2:?}"; shift 2 ;;
    --idle-connections) IDLE_CONNECTIONS="${2:?}"; shift 2 ;;
    --idle-hold) IDLE_HOLD="${2:?}"; shift 2 ;;
    --key) KEY="${2:?}"; shift 2 ;;
    --full-clients) FULL_CLIENTS="${2:?}"; shift 2 ;;
    --url-host) URL_HOST="${2:?}"; shift 2 ;;
    --proxy-cpu) PROXY_CPU="${2:?}"; shift 2 ;;
    --workers) WORKERS="${2:?}"; shift 2 ;;
    --load-cpu) LOAD_CPU="${2:?}"; shift 2 ;;
    --no-pin) PIN=0; shift ;;
    --base-port) BASE_PORT="${2:?}"; shift 2 ;;
    --keep-tmp) KEEP_TMP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
for v in DURATION CONNECTIONS THREADS WARMUP PROXY_CPU LOAD_CPU BASE_PORT ROUNDS FULL_CLIENTS STREAMS IDLE_CONNECTIONS IDLE_HOLD WORKERS; do
    is_uint "${!v}" || die "--$(echo "$v" | tr 'A-Z_' 'a-z-') must be a whole number, got '${!v}'"
done
[ "$DURATION" -ge 1 ] || die "--duration must be at least 1"
[ "$THREADS" -ge 1 ] || die "--threads must be at least 1"
[ "$ROUNDS" -ge 1 ] || die "--rounds must be at least 1"
[ "$WORKERS" -ge 1 ] && [ "$WORKERS" -le 64 ] || die "--workers must be in 1..64"
[ "$CONNECTIONS" -le 2000 ] || die "--connections must be at most 2000 (the proxies allow 4096 connections, client and backend sides together for nginx)"
[ "$CONNECTIONS" -ge "$THREADS" ] || die "--connections must be at least --threads (wrk needs one per thread)"
[ "$STREAMS" -ge 1 ] && [ "$STREAMS" -le 256 ] || die "--streams must be in 1..256"
[ "$IDLE_CONNECTIONS" -ge 1 ] && [ "$IDLE_CONNECTIONS" -le 6000 ] || die "--idle-connections must be in 1..6000 (the proxies allow 8000 connections, nginx 8192 per worker with the backend side)"
[ "$FULL_CLIENTS" -ge 1 ] && [ "$FULL_CLIENTS" -le 256 ] || die "--full-clients must be in 1..256"
[ "$BASE_PORT" -ge 1024 ] && [ "$BASE_PORT" -le 65500 ] || die "--base-port must be in 1024..65500"
case "$KEY" in rsa | ec) ;; *) die "--key must be rsa or ec, got '$KEY'" ;; esac
[[ "$URL_HOST" =~ ^[A-Za-z0-9.-]+$ ]] || die "--url-host must be a host name or an IPv4 address"

ALL_SCENARIOS=(idle http-ka h2 tls-new tls-full tls-ka)
SCENARIOS=()
IFS=',' read -r -a wanted_scenarios <<<"$SCENARIO_LIST"
for s in "${ALL_SCENARIOS[@]}"; do # keep the canonical order whatever the order asked
    for w in "${wanted_scenarios[@]}"; do [ "$w" = "$s" ] && SCENARIOS+=("$s") && break; done
done
for w in "${wanted_scenarios[@]}"; do
    [[ " ${ALL_SCENARIOS[*]} " == *" $w "* ]] || die "unknown scenario '$w' (known: ${ALL_SCENARIOS[*]})"
done
[ "${#SCENARIOS[@]}" -gt 0 ] || die "--scenarios names no scenario"
[ "$WORKERS" = 1 ] || [[ " ${SCENARIOS[*]} " != *" idle "* ]] \
    || die "idle reads one proxy process's RSS: run it with --workers 1 (leave it out of --scenarios)"

# ---------------------------------------------------------------- prerequisites
require_tools haproxy:haproxy nginx:nginx-light wrk:wrk openssl:openssl curl:curl taskset:util-linux ss:iproute2
HAPROXY="$(tool_path haproxy)"
NGINX="$(tool_path nginx)"
WRK="$(tool_path wrk)"
OPENSSL="$(tool_path openssl)"
has_scenario() { [[ " ${SCENARIOS[*]} " == *" $1 "* ]]; }
if has_scenario h2; then require_tools h2load:nghttp2-client; fi
if has_scenario idle; then
    require_tools python3:python3
    # One descriptor per held connection in the client, two in a proxy (nginx: its own limit).
    ulimit -n 65536 2>/dev/null || [ "$(ulimit -n)" -gt $((IDLE_CONNECTIONS + 100)) ] \
        || die "idle needs more open files than ulimit -n ($(ulimit -n)) allows"
fi
H2LOAD="$(tool_path h2load)"
check_tandemd
check_pinning
# CPU sets for taskset: one CPU each, or N consecutive ones with --workers N.
cpu_range() { [ "$WORKERS" = 1 ] && echo "$1" || echo "$1-$(($1 + WORKERS - 1))"; }
PROXY_SET="$(cpu_range "$PROXY_CPU")"
LOAD_SET="$(cpu_range "$LOAD_CPU")"
if [ "$PIN" = 1 ] && [ "$WORKERS" -gt 1 ]; then
    [ $((PROXY_CPU + WORKERS)) -le "$NCPU" ] && [ $((LOAD_CPU + WORKERS)) -le "$NCPU" ] \
        || die "--workers $WORKERS needs CPUs $PROXY_SET and $LOAD_SET; this machine has 0-$((NCPU - 1)) (or use --no-pin)"
    [ $((LOAD_CPU + WORKERS)) -le "$PROXY_CPU" ] || [ $((PROXY_CPU + WORKERS)) -le "$LOAD_CPU" ] \
        || die "--workers $WORKERS: the proxies' CPUs $PROXY_SET overlap the load's $LOAD_SET; move --proxy-cpu or --load-cpu"
fi
if [ "$URL_HOST" != 127.0.0.1 ]; then
    resolved="$(getent ahostsv4 "$URL_HOST" 2>/dev/null | awk 'NR == 1 { print $1 }')"
    [ "$resolved" = 127.0.0.1 ] || die "--url-host $URL_HOST resolves to '${resolved:-nothing}', not 127.0.0.1"
    # wrk takes the first address that accepts: an IPv6 one must not come first and accept.
    getent ahosts "$URL_HOST" 2>/dev/null | awk '{ print $1 }' | grep -q ':' \
        && warn "$URL_HOST also resolves to IPv6; the targets listen on 127.0.0.1 only, so wrk falls back to it"
fi

# ---------------------------------------------------------------- ports
P_BACKEND=$BASE_PORT
P_HAPROXY=$((BASE_PORT + 1))
P_NGINX=$((BASE_PORT + 2))
P_TANDEM=$((BASE_PORT + 3))
P_BACKEND_TLS=$((BASE_PORT + 4))
P_HAPROXY_TLS=$((BASE_PORT + 5))
P_NGINX_TLS=$((BASE_PORT + 6))
P_TANDEM_TLS=$((BASE_PORT + 7))
P_STATS=$((BASE_PORT + 8))
P_HAPROXY_H2=$((BASE_PORT + 9))
P_NGINX_H2=$((BASE_PORT + 10))
P_BACKEND_H2=$((BASE_PORT + 11))
check_ports_free $(seq "$BASE_PORT" "$P_BACKEND_H2")

# ---------------------------------------------------------------- temp dir, certificate
make_tmp tandem-l7-bench
LOADAVG_START="$(cut -d' ' -f1-3 /proc/loadavg)"
mkdir -p "$TMP/tls"
if [ "$KEY" = rsa ]; then
    key_args=(-newkey rsa:2048)
    KEY_DESC="RSA 2048"
else
    key_args=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
    KEY_DESC="ECDSA P-256"
fi
"$OPENSSL" req -x509 "${key_args[@]}" -nodes -days 2 -subj "/CN=localhost" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" >"$TMP/tls/openssl.log" 2>&1 \
    || { cat "$TMP/tls/openssl.log" >&2; die "openssl could not make a certificate"; }
cat "$TMP/tls/cert.pem" "$TMP/tls/key.pem" >"$TMP/tls/haproxy.pem" # HAProxy: both in one file
chmod 0755 "$TMP"

# ---------------------------------------------------------------- backend: nginx
nginx_common() { # nginx_common DIR: the top of an nginx config of one worker, logging off
    cat <<EOF
worker_processes $WORKERS;
pid $1/nginx.pid;
error_log $1/error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $1/client_body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    tcp_nodelay on;
    keepalive_timeout 75s;
    # Keep-alive for the whole run: no reconnects (which a proxy would pay twice).
    keepalive_requests 100000000;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate $TMP/tls/cert.pem;
    ssl_certificate_key $TMP/tls/key.pem;
    ssl_session_cache shared:SSL:10m;
EOF
}
start_nginx() { # start_nginx NAME DIR CPU PORT: check the config, start, wait for PORT
    local name="$1" dir="$2" cpu="$3" port="$4"
    "$NGINX" -t -q -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" \
        || { cat "$dir/error.log" >&2 || true; die "$name rejected its config"; }
    start "$name" "$cpu" "$dir/stderr.log" \
        "$NGINX" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" -g 'daemon off;'
    wait_port "$port" "$(eval echo "\$PID_$name")" "$name" "$dir/error.log"
}

mkdir -p "$TMP/backend"
{
    nginx_common "$TMP/backend"
    cat <<EOF
    server {
        listen 127.0.0.1:$P_BACKEND backlog=4096;
        listen 127.0.0.1:$P_BACKEND_TLS ssl backlog=4096;
        listen 127.0.0.1:$P_BACKEND_H2 http2 backlog=4096;
        location = /ok { default_type text/plain; return 200 "ok\n"; }
    }
}
EOF
} >"$TMP/backend/nginx.conf"
start_nginx backend "$TMP/backend" "$LOAD_SET" "$P_BACKEND"

# ---------------------------------------------------------------- proxy: HAProxy (mode http)
cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread $WORKERS
    maxconn 8000
    stats socket ipv4@127.0.0.1:$P_STATS level user
defaults
    mode http
    maxconn 8000
    timeout connect 5s
    timeout client 5m
    timeout server 5m
    timeout http-request 10s
    timeout http-keep-alive 75s
    option forwardfor
    http-reuse always
frontend http
    bind 127.0.0.1:$P_HAPROXY
    http-request set-header X-Forwarded-Proto http
    default_backend nginx
frontend h2c
    bind 127.0.0.1:$P_HAPROXY_H2 proto h2
    http-request set-header X-Forwarded-Proto http
    default_backend nginx
frontend https
    bind 127.0.0.1:$P_HAPROXY_TLS ssl crt $TMP/tls/haproxy.pem
    http-request set-header X-Forwarded-Proto https
    default_backend nginx
backend nginx
    server nginx 127.0.0.1:$P_BACKEND
EOF
"$HAPROXY" -c -q -f "$TMP/haproxy.cfg" >"$TMP/haproxy-check.log" 2>&1 \
    || { cat "$TMP/haproxy-check.log" >&2; die "haproxy rejected its config"; }
start haproxy "$PROXY_SET" "$TMP/haproxy.log" "$HAPROXY" -f "$TMP/haproxy.cfg" -db
# shellcheck disable=SC2154 # set by lib.sh start() through eval
wait_port "$P_HAPROXY" "$PID_haproxy" haproxy "$TMP/haproxy.log"

# ---------------------------------------------------------------- proxy: nginx
mkdir -p "$TMP/nginx"
{
    nginx_common "$TMP/nginx"
    cat <<EOF
    upstream backend {
        server 127.0.0.1:$P_BACKEND;
        keepalive 1024;
        keepalive_requests 100000000;
        keepalive_timeout 90s;
    }
    server {
        listen 127.0.0.1:$P_NGINX backlog=4096;
        listen 127.0.0.1:$P_NGINX_TLS ssl backlog=4096;
        listen 127.0.0.1:$P_NGINX_H2 http2 backlog=4096;
        server_name localhost; # \$host when a request has no Host (HTTP/1.0 from s_time)
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOF
} >"$TMP/nginx/nginx.conf"
start_nginx nginx "$TMP/nginx" "$PROXY_SET" "$P_NGINX"
# The master only supervises: measure the workers (--workers of them), PIDs space-separated.
# shellcheck disable=SC2154 # set by lib.sh start() through eval
NGINX_WORKER="$(cat "/proc/$PID_nginx/task/$PID_nginx/children" 2>/dev/null | tr -s ' ' '\n' | awk 'NF' | paste -sd' ')"
[ "$(wc -w <<<"$NGINX_WORKER")" = "$WORKERS" ] \
    || die "expected $WORKERS nginx proxy worker(s) under pid $PID_nginx, found '$NGINX_WORKER'"

# ---------------------------------------------------------------- proxy: tandem (HTTP listeners)
mkdir -p "$TMP/tandem"
tandem_listener() { # tandem_listener NAME PORT TLS(0|1)
    cat <<EOF

[[listener]]
name = "$1"
protocol = "http"
bind = "127.0.0.1:$2"
pool = "nginx"
max_connections = 8000

[listener.http]
access_log = false
workers = $WORKERS
forwarded = { x_forwarded_for = true, x_forwarded_proto = true, x_forwarded_host = false, forwarded = false, via = false }
EOF
    if [ "$3" = 1 ]; then
        cat <<EOF

[listener.tls]
certificates = [{ cert = "$TMP/tls/cert.pem", key = "$TMP/tls/key.pem" }]
EOF
    fi
}
{
    cat <<EOF
[node]
id = "bench"
data_dir = "$TMP/tandem/data"
admin_socket = "$TMP/tandem/admin.sock"
drain_timeout = "1s"
EOF
    tandem_listener http "$P_TANDEM" 0
    tandem_listener https "$P_TANDEM_TLS" 1
    cat <<EOF

[[pool]]
name = "nginx"
algorithm = "round_robin"

[pool.http]
max_idle_per_backend = 1024

[[pool.backend]]
id = "nginx"
address = "127.0.0.1:$P_BACKEND"
EOF
} >"$TMP/tandem/tandem.toml"
"$TANDEMD" check-config "$TMP/tandem/tandem.toml" >"$TMP/tandem/check.log" 2>&1 \
    || { cat "$TMP/tandem/check.log" >&2; die "tandemd rejected its config"; }
start tandemd "$PROXY_SET" "$TMP/tandem/tandemd.log" \
    env TOKIO_WORKER_THREADS=1 RUST_LOG=info NO_COLOR=1 "$TANDEMD" run --config "$TMP/tandem/tandem.toml"
# shellcheck disable=SC2154 # set by lib.sh start() through eval
wait_port "$P_TANDEM" "$PID_tandemd" tandemd "$TMP/tandem/tandemd.log"
wait_port "$P_TANDEM_TLS" "$PID_tandemd" tandemd "$TMP/tandem/tandemd.log"

# ---------------------------------------------------------------- sanity: every target answers
TARGETS=(direct haproxy nginx tandem)
declare -A PORT_OF=([direct]=$P_BACKEND [haproxy]=$P_HAPROXY [nginx]=$P_NGINX [tandem]=$P_TANDEM)
declare -A H2_PORT_OF=([direct]=$P_BACKEND_H2 [haproxy]=$P_HAPROXY_H2 [nginx]=$P_NGINX_H2 [tandem]=$P_TANDEM)
declare -A TLS_PORT_OF=([direct]=$P_BACKEND_TLS [haproxy]=$P_HAPROXY_TLS [nginx]=$P_NGINX_TLS [tandem]=$P_TANDEM_TLS)
declare -A PID_OF=([direct]="" [haproxy]=$PID_haproxy [nginx]=$NGINX_WORKER [tandem]=$PID_tandemd)
declare -A TLS_INFO=() # per target: protocol, cipher, key exchange, signature, resumption
for t in "${TARGETS[@]}"; do
    port="${PORT_OF[$t]}" tport="${TLS_PORT_OF[$t]}"
    body="$(curl -fsS --max-time 5 "http://127.0.0.1:$port/ok")" || die "$t: GET http://127.0.0.1:$port/ok failed"
    [ "$body" = ok ] || die "$t: GET /ok answered '$body'"
    if has_scenario h2; then
        body="$(curl -fsS --http2-prior-knowledge --max-time 5 "http://127.0.0.1:${H2_PORT_OF[$t]}/ok")" \
            || die "$t: GET /ok over h2c (prior knowledge) on port ${H2_PORT_OF[$t]} failed"
        [ "$body" = ok ] || die "$t: GET /ok over h2c answered '$body'"
    fi
    body="$(curl -fsS -k --http1.1 --max-time 5 "https://$URL_HOST:$tport/ok")" || die "$t: GET https://$URL_HOST:$tport/ok failed"
    [ "$body" = ok ] || die "$t: GET /ok over TLS answered '$body'"
    # tls-new relies on the server answering `Connection: close` with `Connection: close`
    # and closing: wrk counts anything else as errors.
    curl -fsS -k --http1.1 --max-time 5 -D "$TMP/close-$t.head" -o /dev/null -H 'Connection: close' \
        "https://$URL_HOST:$tport/ok" || die "$t: GET /ok with Connection: close failed"
    grep -qi '^connection: *close' "$TMP/close-$t.head" \
        || warn "$t answers Connection: close without Connection: close ($(tr -d '\r' <"$TMP/close-$t.head" | paste -sd' '))"
    # tls-full sends HTTP/1.0 through openssl s_time: check that path once with s_client.
    answer="$( (printf 'GET /ok HTTP/1.0\r\n\r\n'; sleep 1) | timeout 10 "$OPENSSL" s_client -quiet \
        -connect "127.0.0.1:$tport" 2>/dev/null | tr -d '\r' || true)"
    [[ "$(head -1 <<<"$answer")" == "HTTP/1."?" 200"* ]] || die "$t: GET /ok HTTP/1.0 over TLS answered '$(head -1 <<<"$answer")'"
    # What the handshake looks like, and whether the server resumes a session it issued.
    hs="$(timeout 10 "$OPENSSL" s_client -connect "127.0.0.1:$tport" -servername "$URL_HOST" </dev/null 2>&1 || true)"
    rm -f "$TMP/tls/session.pem"
    (printf 'GET /ok HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'; sleep 0.5) | timeout 10 "$OPENSSL" s_client \
        -connect "127.0.0.1:$tport" -servername "$URL_HOST" -sess_out "$TMP/tls/session.pem" -ign_eof >/dev/null 2>&1 || true
    resumed="$(timeout 10 "$OPENSSL" s_client -connect "127.0.0.1:$tport" -servername "$URL_HOST" \
        -sess_in "$TMP/tls/session.pem" </dev/null 2>/dev/null | grep -Eo '^(New|Reused)' | head -1 || true)"
    TLS_INFO[$t]="$(awk -F': ' '/^New, |^Reused, / { split($0, a, ", "); proto = a[2] }
        /^Server Temp Key:/ { kx = $2 } /^Peer signature type:/ { sig = $2 } /Cipher is / { sub(/.*Cipher is /, ""); c = $0 }
        END { printf "%s\t%s\t%s\t%s", proto, c, kx, sig }' <<<"$hs")"$'\t'"$([ "$resumed" = Reused ] && echo yes || echo "no (${resumed:-no answer})")"
done

# ---------------------------------------------------------------- measuring
write_report_lua "$TMP/report.lua"
{
    echo 'wrk.headers["Connection"] = "close"'
    cat "$TMP/report.lua"
} >"$TMP/close.lua"

run_stime() { # run_stime SECONDS PORT OUTFILE: FULL_CLIENTS x `openssl s_time -new`, one WRKRESULT line
    local secs="$1" port="$2" out="$3" i pid t0 t1 failed=0 pids=()
    t0="$(date +%s%N)"
    for ((i = 1; i <= FULL_CLIENTS; i++)); do
        (on_cpu "$LOAD_SET" timeout --kill-after=5 $((secs + 30)) \
            "$OPENSSL" s_time -connect "127.0.0.1:$port" -new -time "$secs" -www /ok) >"$out.$i" 2>&1 &
        pid=$!
        pids+=("$pid")
        LOAD_PIDS+=("$pid")
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || failed=$((failed + 1))
        forget_load "$pid"
    done
    t1="$(date +%s%N)"
    # s_time prints "1234 connections in 1.65s; 747.88 connections/user sec, bytes read 104318"
    # (an s_time process stops at its first failed connection: it counts as one error).
    {
        awk -v failed="$failed" -v us="$(((t1 - t0) / 1000))" '
            /^[0-9]+ connections in [0-9.]+s;/ { n += $1; b += $NF }
            END { printf "WRKRESULT requests=%d duration_us=%d bytes=%d p50_us= p99_us= max_us= connect=%d read=0 write=0 status=0 timeout=0\n", n, us, b, failed }' "$out".*
        for ((i = 1; i <= FULL_CLIENTS; i++)); do
            [ "$i" -le 2 ] || [ "$failed" -gt 0 ] || continue # two are enough when all went well
            echo "--- openssl s_time client $i of $FULL_CLIENTS"
            grep -Ev '^[t*]*$|Collecting connection statistics' "$out.$i" || true
        done
    } >"$out"
    rm -f "$out".*
}

run_h2load() { # run_h2load SECONDS URL OUTFILE: h2load pinned to LOAD_CPU, one WRKRESULT line
    local secs="$1" url="$2" out="$3" status=0 pid
    (on_cpu "$LOAD_SET" timeout --kill-after=5 $((secs + 30)) "$H2LOAD" -t "$THREADS" \
        -c "$CONNECTIONS" -m "$STREAMS" -D "$secs" --log-file="$out.log" "$url") >"$out.h2load" 2>&1 &
    pid=$!
    LOAD_PIDS+=("$pid")
    wait "$pid" || status=$?
    forget_load "$pid"
    [ "$status" = 0 ] || { cat "$out.h2load" >&2; die "h2load failed against $url (exit status $status)"; }
    # "finished in 5.00s, ..." / "requests: N total, N started, N done, N succeeded, N failed,
    # N errored, N timeout" / "status codes: N 2xx, N 3xx, N 4xx, N 5xx" / "traffic: ... total";
    # the log: start (µs since the epoch), status, µs to the end of the response.
    {
        grep -v '^progress: ' "$out.h2load"
        sort -n -k3,3 "$out.log" | awk -F'\t' '{ v[NR] = $3 } END {
            p50 = NR ? v[int((NR - 1) * 0.50) + 1] : 0; p99 = NR ? v[int((NR - 1) * 0.99) + 1] : 0
            printf "%d %d %d\n", p50, p99, NR ? v[NR] : 0 }' >"$out.pct"
        awk -v pct="$(cat "$out.pct")" '
            /^finished in / { d = $3; sub(/s,$/, "", d); if (d ~ /ms$/) { sub(/ms$/, "", d); d /= 1000 } }
            /^requests: / { done = $6; failed = $10; errored = $12; timeout = $14 }
            /^status codes: / { st = $7 + $9 }
            /^traffic: / { b = $3; gsub(/[()]/, "", b) }
            END { split(pct, p, " ")
                printf "WRKRESULT requests=%d duration_us=%.0f bytes=%.0f p50_us=%d p99_us=%d max_us=%d connect=0 read=%d write=0 status=%d timeout=%d\n",
                    done, d * 1e6, b, p[1], p[2], p[3], failed + errored, st, timeout }' "$out.h2load"
    } >"$out"
    rm -f "$out.h2load" "$out.log" "$out.pct"
}

run_idle() { # run_idle TARGET OUTFILE: bench/l7_idle.py on LOAD_CPU against the plain port
    local t="$1" out="$2" status=0 pid
    (on_cpu "$LOAD_CPU" timeout --kill-after=5 $((IDLE_CONNECTIONS / 50 + IDLE_HOLD + 60)) \
        python3 "$ROOT/bench/l7_idle.py" "${PORT_OF[$t]}" "$IDLE_CONNECTIONS" "$IDLE_HOLD" "${PID_OF[$t]}") >"$out" 2>&1 &
    pid=$!
    LOAD_PIDS+=("$pid")
    wait "$pid" || status=$?
    forget_load "$pid"
    [ "$status" = 0 ] || { cat "$out" >&2; die "the idle client failed against $t (exit status $status)"; }
}

run_load() { # run_load SCENARIO TARGET SECONDS OUTFILE
    local s="$1" t="$2" secs="$3" out="$4"
    case "$s" in
    idle) run_idle "$t" "$out" ;;
    h2) run_h2load "$secs" "http://127.0.0.1:${H2_PORT_OF[$t]}/ok" "$out" ;;
    http-ka) run_wrk "$secs" "http://127.0.0.1:${PORT_OF[$t]}/ok" "$out" "$TMP/report.lua" ;;
    tls-new) run_wrk "$secs" "https://$URL_HOST:${TLS_PORT_OF[$t]}/ok" "$out" "$TMP/close.lua" ;;
    tls-ka) run_wrk "$secs" "https://$URL_HOST:${TLS_PORT_OF[$t]}/ok" "$out" "$TMP/report.lua" ;;
    tls-full) run_stime "$secs" "${TLS_PORT_OF[$t]}" "$out" ;;
    esac
}

haproxy_ssl_info() { # "SslRate SslFrontendKeyRate SslFrontendSessionReuse_pct", from the stats socket
    local out
    out="$( (exec 3<>"/dev/tcp/127.0.0.1/$P_STATS" && echo "show info" >&3 && timeout 2 cat <&3) 2>/dev/null || true)"
    awk -F': ' '$1 == "SslRate" { a = $2 } $1 == "SslFrontendKeyRate" { b = $2 }
        $1 == "SslFrontendSessionReuse_pct" { c = $2 } END { print a " " b " " c }' <<<"$out"
}

declare -A R=() # R[scenario,target,field,round] per run; R[scenario,target,field] over rounds
RAW="$TMP/raw.md"
: >"$RAW"
ROUND_ROWS=()
SSL_ROWS=()
us_ms() { [ -n "$1" ] && awk -v u="$1" 'BEGIN { printf "%.2f ms", u / 1000 }' || echo "-"; }

n_runs=$((${#SCENARIOS[@]} * ${#TARGETS[@]} * ROUNDS))
echo "tandem L7 benchmark: $n_runs runs of ${WARMUP}s warm-up + ${DURATION}s (about $((n_runs * (WARMUP + DURATION)))s)"
echo "wrk -t $THREADS -c $CONNECTIONS; s_time x $FULL_CLIENTS; $KEY_DESC certificate; workers $WORKERS each; pinning: $([ "$PIN" = 1 ] && echo "proxies on CPU $PROXY_SET, backend nginx and the load on CPU $LOAD_SET" || echo off); load average $LOADAVG_START"

measure() { # measure SCENARIO TARGET ROUND: one warm-up and one measured run
    local s="$1" t="$2" r="$3" pid c0 c1 w0 w1 out line kv secs st0 st1 k sampler=""
    local ssl_rate="" key_rate="" reuse=""
    pid="${PID_OF[$t]}"
    printf '  %-8s %-7s ' "$s" "$t"
    if [ "$WARMUP" -gt 0 ] && [ "$s" != idle ]; then
        run_load "$s" "$t" "$WARMUP" "$TMP/warmup.out"
    fi
    if [ -n "$pid" ]; then
        # Reset the peak RSS to the current RSS (Linux >= 4.0), so VmHWM is this run's peak.
        local p
        for p in $pid; do echo 5 >"/proc/$p/clear_refs" 2>/dev/null || true; done
    fi
    if [ "$t" = haproxy ] && [[ "$s" == tls-new || "$s" == tls-full ]]; then
        # Half-way through, HAProxy's own view of the handshakes: how many needed a new key.
        (sleep "$(awk -v d="$DURATION" 'BEGIN { print d / 2 }')"; haproxy_ssl_info >"$TMP/ssl-$s-$r") &
        sampler=$!
        LOAD_PIDS+=("$sampler")
    fi
    c0="$(cpu_ticks "$pid")"
    w0="$(runq_wait_ns "$pid")"
    mapfile -t st0 < <(cpu_snapshot)
    out="$TMP/run-$s-$t-$r.out"
    run_load "$s" "$t" "$DURATION" "$out"
    mapfile -t st1 < <(cpu_snapshot)
    c1="$(cpu_ticks "$pid")"
    w1="$(runq_wait_ns "$pid")"
    R[$s,$t,loadavg,$r]="$(loadavg1)"
    read -r "R[$s,$t,load_busy,$r]" "R[$s,$t,load_steal,$r]" < <(cpu_busy "${st0[0]}" "${st1[0]}")
    read -r "R[$s,$t,proxy_busy,$r]" "R[$s,$t,proxy_steal,$r]" < <(cpu_busy "${st0[1]}" "${st1[1]}")
    if [ -n "$sampler" ]; then
        wait "$sampler" || true
        forget_load "$sampler"
        read -r ssl_rate key_rate reuse 2>/dev/null <"$TMP/ssl-$s-$r" || true
        SSL_ROWS+=("$s"$'\t'"$r"$'\t'"${ssl_rate:--}"$'\t'"${key_rate:--}"$'\t'"${reuse:+$reuse%}")
    fi
    R[$s,$t,rss_kib,$r]=""
    if [ -n "$pid" ]; then
        # shellcheck disable=SC2086 # nginx: one PID per worker
        kill -0 $pid 2>/dev/null || die "$t (pid $pid) died during the run"
        R[$s,$t,rss_kib,$r]="$(vm_hwm_kib "$pid")"
    fi
    line="$(grep '^WRKRESULT ' "$out")" || { cat "$out" >&2; die "no result from the $s run against $t"; }
    for kv in ${line#WRKRESULT }; do
        R[$s,$t,${kv%%=*},$r]="${kv#*=}"
    done
    secs="$(awk -v us="${R[$s,$t,duration_us,$r]}" 'BEGIN { printf "%.6f", us / 1e6 }')"
    R[$s,$t,rss_conn,$r]=""
    if [ "$s" = idle ] && [ -n "${R[$s,$t,rss_held_kib,$r]:-}" ]; then
        # KiB of VmRSS per held connection; the rate is connections opened per second.
        R[$s,$t,rss_conn,$r]="$(awk -v a="${R[$s,$t,rss_before_kib,$r]}" -v b="${R[$s,$t,rss_held_kib,$r]}" \
            -v n="${R[$s,$t,requests,$r]}" 'BEGIN { if (n > 0) printf "%.2f", (b - a) / n }')"
    fi
    R[$s,$t,rps,$r]="$(awk -v n="${R[$s,$t,requests,$r]}" -v d="$secs" 'BEGIN { printf "%.0f", n / d }')"
    R[$s,$t,cpu,$r]=""
    R[$s,$t,cpu_us,$r]=""
    R[$s,$t,runq,$r]=""
    if [ -n "$pid" ]; then
        R[$s,$t,cpu,$r]="$(awk -v a="$c0" -v b="$c1" -v hz="$CLK_TCK" -v d="$secs" 'BEGIN { printf "%.0f", (b - a) / hz / d * 100 }')"
        R[$s,$t,cpu_us,$r]="$(awk -v a="$c0" -v b="$c1" -v hz="$CLK_TCK" -v n="${R[$s,$t,requests,$r]}" \
            'BEGIN { if (n > 0) printf "%.1f", (b - a) / hz / n * 1e6 }')"
        R[$s,$t,runq,$r]="$(awk -v a="$w0" -v b="$w1" -v d="$secs" 'BEGIN { printf "%.0f", (b - a) / 1e9 / d * 100 }')"
    fi
    R[$s,$t,errors,$r]=0
    for k in connect read write status timeout; do
        R[$s,$t,errors,$r]=$((${R[$s,$t,errors,$r]} + ${R[$s,$t,$k,$r]}))
    done
    printf '%7s req/s, p50 %s, p99 %s, proxy %s µs CPU/req, errors %s\n' "${R[$s,$t,rps,$r]}" \
        "$(us_ms "${R[$s,$t,p50_us,$r]}")" "$(us_ms "${R[$s,$t,p99_us,$r]}")" \
        "${R[$s,$t,cpu_us,$r]:--}" "${R[$s,$t,errors,$r]}"
    ROUND_ROWS+=("$s"$'\t'"$t"$'\t'"$r"$'\t'"${R[$s,$t,rps,$r]}"$'\t'"$(us_ms "${R[$s,$t,p50_us,$r]}")"$'\t'"$(us_ms "${R[$s,$t,p99_us,$r]}")"$'\t'"$(pct "${R[$s,$t,cpu,$r]}")"$'\t'"${R[$s,$t,cpu_us,$r]:--}"$'\t'"${R[$s,$t,rss_conn,$r]:--}"$'\t'"$(pct "${R[$s,$t,runq,$r]}")"$'\t'"${R[$s,$t,errors,$r]}"$'\t'"${R[$s,$t,loadavg,$r]}")
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
    [ "$ROUNDS" -gt 1 ] && echo " round $r of $ROUNDS (load average $(loadavg1))"
    # Each round starts with a different target, so slow drifts of a shared machine do not
    # always hit the same one.
    order=()
    for ((i = 0; i < ${#TARGETS[@]}; i++)); do
        order+=("${TARGETS[$(((i + r - 1) % ${#TARGETS[@]}))]}")
    done
    for s in "${SCENARIOS[@]}"; do
        for t in "${order[@]}"; do
            measure "$s" "$t" "$r"
        done
    done
done
LOADAVG_END="$(cut -d' ' -f1-3 /proc/loadavg)"

for s in "${SCENARIOS[@]}"; do
    for t in "${TARGETS[@]}"; do
        for f in rps p50_us p99_us rss_kib rss_conn cpu cpu_us runq load_busy load_steal proxy_busy proxy_steal loadavg; do
            vals=()
            for ((r = 1; r <= ROUNDS; r++)); do vals+=("${R[$s,$t,$f,$r]}"); done
            R[$s,$t,$f]="$(median "${vals[@]}")"
        done
        for f in errors connect read write status timeout; do
            R[$s,$t,$f]=0
            for ((r = 1; r <= ROUNDS; r++)); do R[$s,$t,$f]=$((${R[$s,$t,$f]} + ${R[$s,$t,$f,$r]})); done
        done
        # Memory per idle connection: the first round's, measured on freshly started proxies
        # (later rounds reuse what the first one freed).
        R[$s,$t,rss_conn]="${R[$s,$t,rss_conn,1]}"
        R[$s,$t,rps]="$(awk -v x="${R[$s,$t,rps]}" 'BEGIN { printf "%.0f", x }')"
        if [ -n "${R[$s,$t,cpu_us]}" ]; then
            R[$s,$t,cpu_us]="$(awk -v x="${R[$s,$t,cpu_us]}" 'BEGIN { printf "%.1f", x }')"
        fi
    done
done

# ---------------------------------------------------------------- the table
errs_detail() { # "0" or "12 (read 10, status≥400 2)"
    local s="$1" t="$2" d="" k name
    for k in connect read write status timeout; do
        name="$k"
        [ "$k" = status ] && name="status≥400"
        [ "$s" = tls-full ] && [ "$k" = connect ] && name="failed s_time"
        [ "${R[$s,$t,$k]}" -gt 0 ] && d="$d${d:+, }$name ${R[$s,$t,$k]}"
    done
    [ -n "$d" ] && echo "${R[$s,$t,errors]} ($d)" || echo "0"
}

# shellcheck disable=SC2034 # passed by name to print_*_table
HEADER=(scenario target "req/s" p50 p99 "proxy CPU" "µs CPU/req" "peak RSS" "KiB RSS/idle conn" errors)
ROWS=()
add_row() { local IFS=$'\t'; ROWS+=("$*"); }
for s in "${SCENARIOS[@]}"; do
    for t in "${TARGETS[@]}"; do
        add_row "$s" "$t" "${R[$s,$t,rps]}" "$(us_ms "${R[$s,$t,p50_us]}")" "$(us_ms "${R[$s,$t,p99_us]}")" \
            "$(pct "${R[$s,$t,cpu]}")" "${R[$s,$t,cpu_us]:--}" "$(fmt_rss "${R[$s,$t,rss_kib]}")" "${R[$s,$t,rss_conn]:--}" "$(errs_detail "$s" "$t")"
    done
    for other in haproxy nginx; do
        add_row "$s" "tandem/$other" \
            "$(ratio "${R[$s,tandem,rps]}" "${R[$s,$other,rps]}")" \
            "$(ratio "${R[$s,tandem,p50_us]}" "${R[$s,$other,p50_us]}")" \
            "$(ratio "${R[$s,tandem,p99_us]}" "${R[$s,$other,p99_us]}")" \
            "$(ratio "${R[$s,tandem,cpu]}" "${R[$s,$other,cpu]}")" \
            "$(ratio "${R[$s,tandem,cpu_us]}" "${R[$s,$other,cpu_us]}")" \
            "$(ratio "${R[$s,tandem,rss_kib]}" "${R[$s,$other,rss_kib]}")" \
            "$(ratio "${R[$s,tandem,rss_conn]}" "${R[$s,$other,rss_conn]}")" \
            ""
    done
done

# Whole-CPU load during each measured run (every process on the machine, not only ours):
# tells whether the proxy or the load side (backend nginx + wrk) was the bottleneck.
# shellcheck disable=SC2034 # passed by name to print_*_table
CPU_HEADER=(scenario target "CPU $LOAD_CPU busy (load)" "CPU $LOAD_CPU steal" "CPU $PROXY_CPU busy (proxy)" "CPU $PROXY_CPU steal" "proxy CPU" "proxy waited for CPU" "load avg")
CPU_ROWS=()
for s in "${SCENARIOS[@]}"; do
    for t in "${TARGETS[@]}"; do
        CPU_ROWS+=("$s"$'\t'"$t"$'\t'"$(pct "${R[$s,$t,load_busy]}")"$'\t'"$(pct "${R[$s,$t,load_steal]}")"$'\t'"$(pct "${R[$s,$t,proxy_busy]}")"$'\t'"$(pct "${R[$s,$t,proxy_steal]}")"$'\t'"$(pct "${R[$s,$t,cpu]}")"$'\t'"$(pct "${R[$s,$t,runq]}")"$'\t'"${R[$s,$t,loadavg]}")
    done
done

echo
print_text_table HEADER ROWS
echo
echo "req/s is handshakes/s in tls-new (resumed) and tls-full (full). Ratios are tandem ÷ HAProxy and"
echo "tandem ÷ nginx: for req/s higher is better; for latency, CPU, µs CPU/req and RSS lower is better."
if [ "$PIN" = 1 ]; then
    echo
    print_text_table CPU_HEADER CPU_ROWS
fi

THREADS_OF_TARGET="haproxy $(threads_of "$PID_haproxy"), nginx worker $(threads_of "$NGINX_WORKER"), tandemd $(threads_of "$PID_tandemd")"
# Stop tandemd now, so that its log shows the shutdown too and its exit status is known.
stop_pid "$PID_tandemd"
tandem_exit="$STOPPED_STATUS"

# ---------------------------------------------------------------- Markdown + logs
STAMP="$(date +%Y%m%d-%H%M%S)"
mkdir -p "$ROOT/bench/results"
MD="$ROOT/bench/results/l7-$STAMP.md"
TLOG="$ROOT/bench/results/l7-$STAMP-tandemd.log"
cp "$TMP/tandem/tandemd.log" "$TLOG"
tandem_problems="$(grep -cE ' (WARN|ERROR) ' "$TMP/tandem/tandemd.log" || true)"
haproxy_lines="$(grep -cv '^$' "$TMP/haproxy.log" || true)"
nginx_problems="$(grep -cE '\[(warn|error|crit|alert|emerg)\]' "$TMP/nginx/error.log" 2>/dev/null || true)"
backend_problems="$(grep -cE '\[(warn|error|crit|alert|emerg)\]' "$TMP/backend/error.log" 2>/dev/null || true)"
# shellcheck disable=SC2034 # passed by name to print_*_table
TLS_HEADER=(target protocol cipher "key exchange" signature "resumes a session")
TLS_ROWS=()
for t in "${TARGETS[@]}"; do TLS_ROWS+=("$t"$'\t'"${TLS_INFO[$t]}"); done
{
    echo "# tandem L7 benchmark, $(date '+%Y-%m-%d %H:%M:%S %Z')"
    echo
    echo "Command: \`bench/l7.sh --duration $DURATION --connections $CONNECTIONS --threads $THREADS --warmup $WARMUP --rounds $ROUNDS --scenarios $(IFS=,; echo "${SCENARIOS[*]}") --streams $STREAMS --idle-connections $IDLE_CONNECTIONS --idle-hold $IDLE_HOLD --key $KEY --full-clients $FULL_CLIENTS --url-host $URL_HOST$([ "$PIN" = 0 ] && echo " --no-pin")\`"
    echo
    echo "- machine: $NCPU CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), Linux $(uname -r); load average $LOADAVG_START at the start, $LOADAVG_END at the end"
    echo "- tandemd: $(tandemd_description), TOKIO_WORKER_THREADS=1, HTTP listeners with workers = $WORKERS and access_log = false"
    echo "- $("$HAPROXY" -v | head -1 | sed 's/ - https.*//'), mode http, nbthread $WORKERS, http-reuse always, option forwardfor"
    echo "- $("$NGINX" -v 2>&1 | sed 's/^nginx version: //') as the reverse proxy ($WORKERS worker(s), upstream keepalive 1024, proxy_http_version 1.1, Connection \"\") and as the backend ($WORKERS worker(s), return 200 \"ok\\n\")"
    echo "- threads: $THREADS_OF_TARGET"
    echo "- $("$WRK" --version 2>&1 | head -1 | sed 's/ Copyright.*//'): -t $THREADS -c $CONNECTIONS -d ${DURATION}s --latency, after a ${WARMUP}s warm-up per target; tls-new adds \`Connection: close\` from Lua"
    has_scenario h2 && echo "- h2: $("$H2LOAD" --version 2>&1 | head -1) -t $THREADS -c $CONNECTIONS -m $STREAMS -D $DURATION, h2c with prior knowledge, after a ${WARMUP}s warm-up per target; p50/p99 from its per-request log"
    has_scenario idle && echo "- idle: $IDLE_CONNECTIONS connections opened one after the other (bench/l7_idle.py), one GET /ok each, held ${IDLE_HOLD}s; KiB RSS/idle conn = VmRSS growth of the proxy ÷ connections, round 1 (fresh proxies); µs CPU/req there is per connection (open, request, hold, close)"
    echo "- tls-full: $FULL_CLIENTS x \`openssl s_time -new -www /ok\` ($("$OPENSSL" version)), handshakes counted over the wall time of the run"
    echo "- certificate: self-signed $KEY_DESC, CN=localhost; wrk's URL host (SNI): $URL_HOST"
    echo "- pinning: $([ "$PIN" = 1 ] && echo "proxies on CPU $PROXY_SET, backend nginx, wrk and s_time on CPU $LOAD_SET (taskset)" || echo "none")"
    echo "- peak RSS: VmHWM of the proxy process (nginx: its worker), reset before the measured run; proxy CPU: its utime+stime over the run ÷ wall time; µs CPU/req: the same ÷ requests"
    echo
    print_md_table HEADER ROWS
    echo
    echo "req/s is handshakes/s in tls-new (TLS 1.3 resumptions, one request each) and tls-full (full handshakes, one request each). Ratios are tandem ÷ HAProxy and tandem ÷ nginx: for req/s higher is better; for latency, CPU, µs CPU/req and RSS lower is better. errors: wrk's connect, read, write, timeout and status≥400 counts (in tls-full, s_time processes that stopped on a failed connection)."
    if [ "$ROUNDS" -gt 1 ]; then
        echo
        echo "The table shows the median of $ROUNDS rounds (errors: the sum). Every round:"
        echo
        # shellcheck disable=SC2034 # passed by name to print_*_table
        ROUND_HEADER=(scenario target round "req/s" p50 p99 "proxy CPU" "µs CPU/req" "KiB RSS/idle conn" "proxy waited" errors "load avg")
        print_md_table ROUND_HEADER ROUND_ROWS
    fi
    echo
    echo "TLS as seen by \`openssl s_client\` (SNI $URL_HOST), and whether a second connection offering the first one's session is resumed:"
    echo
    print_md_table TLS_HEADER TLS_ROWS
    if [ "${#SSL_ROWS[@]}" -gt 0 ]; then
        echo
        echo "HAProxy's own count half-way through its handshake runs (\`show info\`, per second): SSL connections, of which needed a new key (a full handshake), and its session reuse percentage:"
        echo
        # shellcheck disable=SC2034 # passed by name to print_*_table
        SSL_HEADER=(scenario round "SslRate" "SslFrontendKeyRate" "SslFrontendSessionReuse_pct")
        print_md_table SSL_HEADER SSL_ROWS
    fi
    if [ "$PIN" = 1 ]; then
        echo
        echo "Load of the two CPUs during each measured run (all processes on the machine, softirq included; steal = time taken by the hypervisor)."
        echo "\"proxy waited for CPU\": time the proxy's threads were runnable but not running (/proc/PID/task/*/schedstat), as a share of the run: other work on its CPU delayed it. \"load avg\": the 1-minute load average at the end of the run."
        echo
        print_md_table CPU_HEADER CPU_ROWS
    fi
    echo
    echo "tandemd exit status after SIGTERM: $tandem_exit."
    echo
    echo "Logs: tandemd wrote $tandem_problems WARN/ERROR lines (full log: \`$(basename "$TLOG")\`);" \
        "haproxy wrote $haproxy_lines lines; the nginx proxy wrote $nginx_problems and the backend nginx $backend_problems warn-or-worse lines."
    if [ "$tandem_problems" -gt 0 ]; then
        echo
        echo "tandemd's WARN/ERROR lines, counted by message:"
        echo
        echo '```'
        grep -E ' (WARN|ERROR) ' "$TMP/tandem/tandemd.log" | sed -E 's/^[^ ]+ +//' | sort | uniq -c | sort -rn | head -20
        echo '```'
    fi
    for f in "$TMP/haproxy.log" "$TMP/nginx/error.log" "$TMP/backend/error.log"; do
        if [ -s "$f" ]; then
            echo
            echo "${f#"$TMP"/} (first lines):"
            echo
            echo '```'
            head -20 "$f"
            echo '```'
        fi
    done
    echo
    echo "## Raw output"
    echo
    cat "$RAW"
} >"$MD"

echo "Markdown: ${MD#"$ROOT"/}"
echo "tandemd log: ${TLOG#"$ROOT"/} ($tandem_problems WARN/ERROR lines, exit status $tandem_exit after SIGTERM)"
