#!/usr/bin/env bash
# Failover benchmark: tandem's VRRP beside keepalived's, as a client sees it. A benchmark for
# people to read, not a test: it never fails on a number, only when a lab cannot be built.
#
# Usage: bench/failover.sh [--rounds R] [--intervals "1s 100ms"] [--drills "crash term"]
#                          [--families "ipv4 ipv6"] [--name fbench] [--probe-timeout 30ms]
#
#   --rounds R      drills per implementation, interval and kind (default 5)
#   --intervals     advert intervals to measure (default "1s 100ms")
#   --drills        crash (SIGKILL of the VIP holder) and/or term (SIGTERM: planned
#                   handover, priority 0 advert) (default "crash term")
#   --families      VIP families to measure (default "ipv4 ipv6"): ipv6 floats
#                   2001:db8:51::100/64 (`appliance/lab.sh up --ipv6`: an IPv6 VRRP
#                   instance, keepalived with native_ipv6) and probes [2001:db8:51::100]:7000
#   --name          the lab's name for appliance/lab.sh (default fbench)
#   --probe-timeout the probe's timeout per connection (default 30ms): the resolution of
#                   the gap once nobody holds the VIP (a SYN to it goes unanswered)
#
# Method: appliance/lab.sh builds two nodes in network namespaces (n1 priority 150, n2
# priority 100, VIP 198.51.100.100, or 2001:db8:51::100 for ipv6, vrid 51) and a client. Every node forwards :7000 to its
# own who-am-I backend with tandemd; the VRRP speaker is either tandemd itself (tandem) or
# keepalived with vrrp_version 3 (`--keepalived n1 --keepalived n2`), with the same VRID,
# VIP, priorities, advert interval and gratuitous-ARP settings. Each drill runs tandem-probe
# in the client (a TCP connection to the VIP every 10 ms, 30 ms timeout), hits the holder
# (n1) 2 s in, right after its next advert (so both implementations are hit at the same
# point of the interval: a crash's gap is Master_Down_Interval minus the time since the
# last advert), and reports the longest time the client went without an answer; then lab.sh
# restarts n1 and waits until it holds the VIP again. Rounds alternate which implementation
# goes first, so a noisy neighbour hurts both alike. The figure is the client-seen gap:
# detection (Master_Down_Interval, or Skew_Time after a priority-0 advert), the gratuitous
# ARP, and the probe's own resolution (a probe to an address nobody holds waits out its
# timeout; a healthy answer takes a few ms, so 30 ms only costs a false miss under heavy
# load, far shorter than any failover gap).
#
# Runtime: roughly R x 2 intervals x 2 families x 2 implementations x 2 drills x ~10 s,
# plus a few seconds per lab; about 14 minutes for R = 5, 8 for R = 3.
#
# Results: a table on stdout and as Markdown in bench/results/failover-<timestamp>.md, with
# every run's figures; the labs' logs and probe outputs in bench/results/failover-<timestamp>/.
#
# Needs: root, iproute2, nftables, socat, keepalived; tandemd and tandem-probe (TANDEMD, or
# see appliance/lab.sh for where it looks).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LAB="$ROOT/appliance/lab.sh"
ROUNDS=5
INTERVALS="1s 100ms"
DRILLS="crash term"
FAMILIES="ipv4 ipv6"
NAME=fbench
PROBE_TIMEOUT=30ms

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

die() {
    echo "bench/failover.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    --rounds) ROUNDS="${2:?}"; shift 2 ;;
    --intervals) INTERVALS="${2:?}"; shift 2 ;;
    --drills) DRILLS="${2:?}"; shift 2 ;;
    --families) FAMILIES="${2:?}"; shift 2 ;;
    --name) NAME="${2:?}"; shift 2 ;;
    --probe-timeout) PROBE_TIMEOUT="${2:?}"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
done
if ! [[ "$ROUNDS" =~ ^[0-9]+$ ]] || [ "$ROUNDS" -lt 1 ] || [ "$ROUNDS" -gt 50 ]; then die "--rounds must be 1..50"; fi
for d in $DRILLS; do
    case "$d" in crash | term) ;; *) die "--drills: crash and/or term, not '$d'" ;; esac
done
for f in $FAMILIES; do
    case "$f" in ipv4 | ipv6) ;; *) die "--families: ipv4 and/or ipv6, not '$f'" ;; esac
done
[[ "$PROBE_TIMEOUT" =~ ^[0-9]+ms$ ]] || die "--probe-timeout: a value like 30ms, not '$PROBE_TIMEOUT'"
for i in $INTERVALS; do
    [[ "$i" =~ ^[0-9]+(ms|s)$ ]] || die "--intervals: values like 1s or 100ms, not '$i'"
done
[ "$(id -u)" -eq 0 ] || die "needs root (appliance/lab.sh builds network namespaces)"
command -v keepalived >/dev/null 2>&1 || die "needs keepalived: apt-get install -y keepalived"
[ -x "$LAB" ] || die "$LAB is missing or not executable"

n_int=$(wc -w <<<"$INTERVALS")
n_drill=$(wc -w <<<"$DRILLS")
n_fam=$(wc -w <<<"$FAMILIES")
runs=$((ROUNDS * n_int * n_fam * 2 * n_drill))
echo "bench/failover.sh: $runs drills (rounds $ROUNDS x intervals [$INTERVALS] x families [$FAMILIES] x tandem/keepalived x drills [$DRILLS]);"
echo "  roughly $ROUNDS x $n_int x $n_fam x 2 x $n_drill x ~10 s = ~$((runs * 10 / 60 + 1)) min, plus a few seconds per lab."
if pgrep -x wrk >/dev/null 2>&1 || pgrep -x haproxy >/dev/null 2>&1; then
    echo "  note: another benchmark (wrk/haproxy) is running on this machine; figures may be noisy." >&2
fi

STAMP="$(date +%Y%m%d-%H%M%S)"
RESULTS="$ROOT/bench/results"
LOGS="$RESULTS/failover-$STAMP"
mkdir -p "$LOGS"
DATA="$LOGS/runs.tsv"
printf 'round\timpl\tinterval\tdrill\tgap_ms\tchanges\tto\tfamily\tafter_advert_ms\n' >"$DATA"
STATE="$LOGS/state"

lab() { "$LAB" --name "$NAME" --state-dir "$STATE" "$@"; }

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    lab down >/dev/null 2>&1 || true
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Which binary (lab.sh prints it, and warns when it looks stale).
lab down >/dev/null 2>&1 || true

save_logs() { # save_logs TAG
    mkdir -p "$LOGS/$1"
    cp "$STATE"/*.log "$STATE"/*.conf "$STATE"/*.toml "$STATE"/probe-*.out "$LOGS/$1/" 2>/dev/null || true
}

TANDEMD_USED=""
for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then impls="tandem keepalived"; else impls="keepalived tandem"; fi
    for interval in $INTERVALS; do
      for family in $FAMILIES; do
        for impl in $impls; do
            tag="r$round-$impl-$interval-$family"
            extra=()
            [ "$impl" = keepalived ] && extra=(--keepalived n1 --keepalived n2)
            [ "$family" = ipv6 ] && extra+=(--ipv6)
            echo "--- round $round: $impl, advert interval $interval, $family VIP"
            if ! lab up --nodes 2 --interval "$interval" "${extra[@]}" >"$LOGS/$tag.up.out" 2>&1; then
                cat "$LOGS/$tag.up.out" >&2
                save_logs "$tag"
                lab down >/dev/null 2>&1 || true
                die "lab up failed ($impl, $interval, $family); logs in $LOGS/$tag"
            fi
            if [ -z "$TANDEMD_USED" ]; then
                TANDEMD_USED="$(grep -m1 '^appliance/lab.sh: tandemd: ' "$LOGS/$tag.up.out" | sed 's/^appliance\/lab.sh: tandemd: //' || true)"
                grep 'may be stale' "$LOGS/$tag.up.out" >&2 || true
            fi
            for drill in $DRILLS; do
                out="$LOGS/$tag-$drill.out"
                if lab drill "$drill" --probe-timeout "$PROBE_TIMEOUT" >"$out" 2>&1; then :; fi
                result="$(grep -m1 '^RESULT ' "$out" || true)"
                if [ -z "$result" ]; then
                    echo "    $drill: no result (see $out)" >&2
                    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$impl" "$interval" "$drill" "-" "-" "-" "$family" "-" >>"$DATA"
                    continue
                fi
                field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$result"; }
                gap="$(field longest_gap_ms)"
                to="$(field to)"
                changes="$(field changes)"
                # A drill where the client never moved to n2 measured nothing.
                [ "$to" = n2 ] || gap="-"
                printf '    %-5s longest gap %s ms (answerer %s, %s change(s))\n' "$drill" "$gap" "$(field path)" "$changes"
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$impl" "$interval" "$drill" "$gap" "$changes" "$to" "$family" "$(field after_advert_ms)" >>"$DATA"
                grep -q '^appliance/lab.sh: warning: after the drill' "$out" && echo "    (n1 did not come back; see $out)" >&2
            done
            save_logs "$tag"
            lab down >/dev/null 2>&1 || true
        done
      done
    done
done

# ---------------------------------------------------------------- table
# One row per (drill, interval and family, implementation): runs, min, median, max; and the
# ratio of medians tandem/keepalived (below 1: tandem fails over faster). The interval
# column reads "100ms/ipv6" for an IPv6 VIP.
SETTINGS=""
for interval in $INTERVALS; do
    for family in $FAMILIES; do SETTINGS="$SETTINGS $interval/$family"; done
done
summary="$(awk -F'\t' -v drills="$DRILLS" -v intervals="$SETTINGS" '
    NR == 1 { next }
    { $3 = $3 "/" $8; key = $4 SUBSEP $3 SUBSEP $2; total[key]++ }
    $5 != "-" { n[key]++; v[key, n[key]] = $5 + 0 }
    function median(key,   i, j, t, m) {
        m = n[key]
        for (i = 1; i <= m; i++) s[i] = v[key, i]
        for (i = 2; i <= m; i++) { t = s[i]; for (j = i - 1; j >= 1 && s[j] > t; j--) s[j + 1] = s[j]; s[j + 1] = t }
        lo = s[1]; hi = s[m]
        return (m % 2) ? s[(m + 1) / 2] : (s[m / 2] + s[m / 2 + 1]) / 2
    }
    END {
        nd = split(drills, D, " "); ni = split(intervals, I, " ")
        for (a = 1; a <= nd; a++) for (b = 1; b <= ni; b++) {
            med["tandem"] = ""; med["keepalived"] = ""
            split("tandem keepalived", IM, " ")
            for (c = 1; c <= 2; c++) {
                key = D[a] SUBSEP I[b] SUBSEP IM[c]
                if (n[key] > 0) {
                    m = median(key); med[IM[c]] = m
                    printf "%s\t%s\t%s\t%d/%d\t%.0f\t%.0f\t%.0f\n", D[a], I[b], IM[c], n[key], total[key], lo, m, hi
                } else {
                    printf "%s\t%s\t%s\t0/%d\t-\t-\t-\n", D[a], I[b], IM[c], total[key]
                }
            }
            if (med["tandem"] != "" && med["keepalived"] != "" && med["keepalived"] > 0)
                printf "ratio\t%s\t%s\t%.2f\n", D[a], I[b], med["tandem"] / med["keepalived"]
            else
                printf "ratio\t%s\t%s\t-\n", D[a], I[b]
        }
    }' "$DATA")"

ratio_of() { awk -F'\t' -v d="$1" -v i="$2" '$1 == "ratio" && $2 == d && $3 == i { print $4 }' <<<"$summary"; }

{
    printf '%-6s %-11s %-11s %-5s %8s %8s %8s %s\n' drill interval impl runs "min ms" "median" "max ms" "tandem/keepalived (medians)"
    awk -F'\t' '$1 != "ratio"' <<<"$summary" | while IFS=$'\t' read -r d i im runs lo med hi; do
        r=""
        [ "$im" = keepalived ] && r="$(ratio_of "$d" "$i")"
        printf '%-6s %-11s %-11s %-5s %8s %8s %8s %s\n' "$d" "$i" "$im" "$runs" "$lo" "$med" "$hi" "$r"
    done
} | tee "$LOGS/table.txt"

MD="$RESULTS/failover-$STAMP.md"
{
    echo "# Failover: tandem beside keepalived ($STAMP)"
    echo
    echo "Client-seen longest gap without an answer (ms) when the VIP holder is hit 2 s into a"
    echo "probe, right after its next VRRP advert (a TCP connection to the VIP every 10 ms,"
    echo "$PROBE_TIMEOUT timeout). crash = SIGKILL of the"
    echo "holder; term = SIGTERM (planned handover: priority-0 advert, the backup waits Skew_Time)."
    echo "Two nodes, priorities 150/100; the backup's Master_Down_Interval is 3 x interval + 0.61 x interval."
    echo "Families: $FAMILIES (ipv6: VIP 2001:db8:51::100/64, an IPv6 VRRP instance on both sides,"
    echo "keepalived with native_ipv6; unsolicited neighbour advertisements instead of gratuitous ARP)."
    echo "Ratio below 1: tandem's client-seen failover is shorter than keepalived's."
    echo
    echo "| drill | advert interval | implementation | runs | min ms | median ms | max ms | tandem/keepalived (medians) |"
    echo "|---|---|---|---|---|---|---|---|"
    awk -F'\t' '$1 != "ratio"' <<<"$summary" | while IFS=$'\t' read -r d i im runs lo med hi; do
        r=""
        [ "$im" = keepalived ] && r="$(ratio_of "$d" "$i")"
        echo "| $d | $i | $im | $runs | $lo | $med | $hi | $r |"
    done
    echo
    echo "## Setup"
    echo
    echo "- machine: $(nproc) CPUs, $(uname -sr), load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- tandemd: ${TANDEMD_USED:-?}"
    echo "- keepalived: $(keepalived --version 2>&1 | head -n 1)"
    echo "- rounds: $ROUNDS, alternating which implementation goes first"
    echo "- lab: appliance/lab.sh (network namespaces, a bridge in a hub namespace); on a keepalived"
    echo "  node tandemd runs without VRRP as the forwarder, so the data path is the same"
    echo "- logs and probe outputs: bench/results/failover-$STAMP/"
    echo
    echo "## Every run"
    echo
    echo "| round | implementation | interval | family | drill | gap ms | changes | moved to | hit ms after the advert |"
    echo "|---|---|---|---|---|---|---|---|---|"
    awk -F'\t' 'NR > 1 { printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $8, $4, $5, $6, $7, $9 }' "$DATA"
} >"$MD"
rm -rf "$STATE"
echo "bench/failover.sh: wrote $MD (logs in $LOGS/)"
