# Shell functions shared by the benchmarks (bench/l4.sh, bench/l7.sh). Sourced, not run:
# shellcheck shell=bash disable=SC2034 # STOPPED_STATUS, CLK_TCK: globals for the scripts that source this
#
#   ROOT="$(cd "$(dirname "$0")/.." && pwd)"
#   source "$ROOT/bench/lib.sh"
#
# The functions read these variables of the calling script, where they need them:
#   PIN, LOAD_CPU, PROXY_CPU   pinning (on_cpu, check_pinning, cpu_snapshot)
#   TMP, KEEP_TMP              the temporary directory (make_tmp, cleanup)
#   WRK, THREADS, CONNECTIONS  wrk and its load (run_wrk)
#   ROOT, TANDEMD              the checkout and the binary (check_tandemd)
# and keep these: PIDS (every process started, in order), LOAD_PIDS (load generators under
# way), STALE (set by check_tandemd), STOPPED_STATUS (set by stop_pid), PID_<name> (start).

BENCH_NAME="bench/$(basename "$0")"

usage() { # the comment block at the top of the calling script, up to `set -euo pipefail`
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

die() {
    echo "$BENCH_NAME: $*" >&2
    exit 1
}

warn() { echo "$BENCH_NAME: warning: $*" >&2; }

is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

# ---------------------------------------------------------------- tools, binary, CPUs, ports
require_tools() { # require_tools CMD:DEBIAN_PACKAGE...: die naming every missing package
    local tool cmd missing=()
    for tool in "$@"; do
        cmd="${tool%%:*}"
        # nginx and haproxy live in /usr/sbin, which is not always on a user's PATH.
        if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
            missing+=("${tool#*:}")
        fi
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        die "missing: ${missing[*]}. On Debian: apt-get install -y ${missing[*]}"
    fi
}

tool_path() { command -v "$1" 2>/dev/null || echo "/usr/sbin/$1"; }

check_tandemd() { # the binary exists; STALE says why it may be older than the sources
    [ -x "$TANDEMD" ] || die "no tandemd binary at $TANDEMD. Build it: cargo build --release -p tandemd (or set TANDEMD=...)"
    # A stale binary is easy to benchmark by mistake: say so when the sources are newer.
    STALE=""
    local src_time
    src_time="$(cd "$ROOT" && git log -1 --format=%ct -- crates Cargo.toml Cargo.lock 2>/dev/null || true)"
    if [ -n "$src_time" ] && [ "$(stat -c %Y "$TANDEMD")" -lt "$src_time" ]; then
        STALE="older than the last commit to crates/ ($(cd "$ROOT" && git log -1 --format=%h -- crates Cargo.toml Cargo.lock)); rebuild with cargo build --release -p tandemd"
        warn "$TANDEMD is $STALE"
    fi
}

tandemd_description() { # one line: version, build time, checkout, staleness
    echo "$("$TANDEMD" --version), binary built $(date -r "$TANDEMD" '+%Y-%m-%d %H:%M:%S %Z') (checkout at $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo "?")$(cd "$ROOT" && [ -n "$(git status --porcelain -- crates Cargo.toml Cargo.lock 2>/dev/null)" ] && echo ", with uncommitted changes")$([ -n "$STALE" ] && echo "; **the binary is $STALE**"))"
}

check_pinning() { # sets NCPU; turns PIN off on a single CPU; checks the CPU numbers
    NCPU="$(nproc)"
    if [ "$PIN" = 1 ]; then
        if [ "$NCPU" -lt 2 ]; then
            echo "$BENCH_NAME: only $NCPU CPU available; running without pinning" >&2
            PIN=0
        elif [ "$PROXY_CPU" -ge "$NCPU" ] || [ "$LOAD_CPU" -ge "$NCPU" ]; then
            die "--proxy-cpu/--load-cpu must be below $NCPU"
        fi
    fi
}

on_cpu() { # on_cpu CPU CMD...: exec CMD (same PID) pinned to CPU, or unpinned with --no-pin
    local cpu="$1"
    shift
    if [ "$PIN" = 1 ]; then
        exec taskset -c "$cpu" "$@"
    else
        exec "$@"
    fi
}

check_ports_free() { # check_ports_free PORT...: die if anything listens on one of them
    local p
    for p in "$@"; do
        if [ -n "$(ss -Hltn "( sport = :$p )" 2>/dev/null)" ]; then
            die "port $p is already listened on (ss -ltnp 'sport = :$p'); pick other ports with --base-port"
        fi
    done
}

# ---------------------------------------------------------------- temp dir, processes, cleanup
make_tmp() { # make_tmp PREFIX: TMP, empty process lists, cleanup on exit and on signals
    TMP="$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")"
    PIDS=()      # everything we started, in start order
    LOAD_PIDS=() # the load generators under way (wrk, openssl s_time), if any
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

stop_pid() { # TERM, then KILL after 5 s; also the direct children (nginx's worker)
    local pid="$1" kids="" i
    STOPPED_STATUS="already gone"
    kill -0 "$pid" 2>/dev/null || return 0
    kids="$(cat "/proc/$pid/task/$pid/children" 2>/dev/null || true)"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    STOPPED_STATUS=0
    wait "$pid" 2>/dev/null || STOPPED_STATUS=$?
    for k in $kids; do
        kill -0 "$k" 2>/dev/null && kill -KILL "$k" 2>/dev/null || true
    done
}

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    for i in "${LOAD_PIDS[@]}"; do stop_pid "$i"; done
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

start() { # start NAME CPU LOGFILE [ENV=VAL...] CMD...: background, PID recorded as PID_NAME
    local name="$1" cpu="$2" log="$3"
    shift 3
    (on_cpu "$cpu" "$@") >"$log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
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

# ---------------------------------------------------------------- measuring
# wrk prints its usual report (kept for the Markdown) and, from this script, one line of
# exact numbers: latency in microseconds, bytes, and every error class.
write_report_lua() { # write_report_lua FILE
    cat >"$1" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKRESULT requests=%.0f duration_us=%.0f bytes=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f connect=%.0f read=%.0f write=%.0f status=%.0f timeout=%.0f\n",
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
EOF
}

forget_load() { # forget_load PID: drop a finished load generator from LOAD_PIDS
    local p keep=()
    for p in "${LOAD_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    LOAD_PIDS=("${keep[@]}")
}

run_wrk() { # run_wrk SECONDS URL OUTFILE [LUA_SCRIPT]: wrk pinned to LOAD_CPU; dies if wrk fails
    local secs="$1" url="$2" out="$3" script="${4:-$TMP/report.lua}"
    local status=0
    # wrk ends on its own after -d; the outer timeout only guards against a hang. It runs in
    # the background so that a signal to this script stops it at once (see cleanup).
    (on_cpu "${LOAD_SET:-$LOAD_CPU}" timeout --kill-after=5 $((secs + 30)) \
        "$WRK" -t "$THREADS" -c "$CONNECTIONS" -d "${secs}s" --latency -s "$script" "$url") \
        >"$out" 2>&1 &
    local pid=$!
    LOAD_PIDS+=("$pid")
    wait "$pid" || status=$?
    forget_load "$pid"
    [ "$status" = 0 ] || { cat "$out" >&2; die "wrk failed against $url (exit status $status)"; }
}

CLK_TCK="$(getconf CLK_TCK)"
cpu_ticks() { # utime+stime of whole processes (all threads; PIDs space-separated), in ticks
    local pids="$1" p
    [ -n "$pids" ] || { echo 0; return; }
    # The command name (field 2) is in parentheses and may hold spaces: cut after ')'.
    for p in $pids; do cat "/proc/$p/stat"; done | awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t }'
}
cpu_snapshot() { # "user nice system idle iowait irq softirq steal" of the two pinned CPUs
    awk -v a="cpu$LOAD_CPU" -v b="cpu$PROXY_CPU" '$1 == a { la = $2" "$3" "$4" "$5" "$6" "$7" "$8" "$9 }
        $1 == b { lb = $2" "$3" "$4" "$5" "$6" "$7" "$8" "$9 } END { print la; print lb }' /proc/stat
}
cpu_busy() { # cpu_busy BEFORE AFTER: "busy% steal%" of one CPU between two snapshot lines
    awk -v x="$1" -v y="$2" 'BEGIN {
        n = split(x, a, " "); split(y, b, " "); t = 0
        for (i = 1; i <= n; i++) { d[i] = b[i] - a[i]; t += d[i] }
        if (t <= 0) { print "\t"; exit }
        printf "%.0f %.0f\n", (d[1] + d[2] + d[3] + d[6] + d[7]) / t * 100, d[8] / t * 100 }'
}
runq_wait_ns() { # time all threads of processes (PIDs space-separated) spent waiting for a CPU
    local pids="$1" p
    [ -n "$pids" ] || { echo 0; return; }
    for p in $pids; do cat "/proc/$p/task/"*/schedstat 2>/dev/null; done | awk '{ s += $2 } END { printf "%.0f\n", s }'
}
vm_hwm_kib() { # peak RSS, summed over the PIDs given (space-separated)
    local p
    for p in $1; do cat "/proc/$p/status"; done | awk '/^VmHWM:/ { s += $2 } END { print s }'
}
threads_of() { # threads, summed over the PIDs given (space-separated)
    local p
    for p in $1; do cat "/proc/$p/status"; done | awk '/^Threads:/ { s += $2 } END { print s }'
}
loadavg1() { cut -d' ' -f1 /proc/loadavg; }

# ---------------------------------------------------------------- numbers and tables
median() { # median of the arguments (empty ones ignored); empty if none
    printf '%s\n' "$@" | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
pct() { [ -n "$1" ] && awk -v x="$1" 'BEGIN { printf "%.0f%%", x }' || echo "-"; }
fmt_rss() { [ -n "$1" ] && awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }' || echo "-"; }
ratio() { # ratio A B: A/B as "0.97×", or "-" when either is missing or B is zero
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f×\n", a / b }'
}

print_text_table() { # print_text_table HEADER_ARRAY_NAME ROWS_ARRAY_NAME (rows: tab-separated)
    local -n hdr="$1" rows="$2"
    {
        (IFS=$'\t'; echo "${hdr[*]}")
        printf '%s\n' "${rows[@]}"
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
print_md_table() { # print_md_table HEADER_ARRAY_NAME ROWS_ARRAY_NAME
    local -n hdr="$1" rows="$2"
    local row
    printf '| %s ' "${hdr[@]}"
    echo "|"
    echo "|$(printf -- '---|%.0s' "${hdr[@]}")"
    for row in "${rows[@]}"; do
        echo "| ${row//$'\t'/ | } |"
    done
}
