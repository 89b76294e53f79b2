#!/usr/bin/env bash
# Client load for the drills, run ON the client (the lab's client namespace, or the client
# VM through ssh with this file on stdin). Sequential HTTP GETs through the VIP, one line
# per request:
#
#   START_US END_US ok|fail BODY   (BODY: the backend's name, or curl-exit-N on a failure)
#
# framed by "# start US" and "# end US" (microseconds of the client's wall clock). It stops
# when STOP_FILE appears, after MAX_SECONDS, or after MAX_SECONDS * 100 requests, whichever
# comes first. A request that gets no complete 2xx/3xx answer within TIMEOUT seconds
# (connect included) is a failure: the gap's resolution is that timeout.
#
# Usage: load.sh URL STOP_FILE MAX_SECONDS TIMEOUT [PAUSE]
# Needs bash 5 (EPOCHREALTIME) and curl.
set -u

url="${1:?URL}" stop="${2:?STOP_FILE}" max_s="${3:?MAX_SECONDS}" timeout="${4:?TIMEOUT}" pause="${5:-0.02}"
command -v curl >/dev/null 2>&1 || { echo "load.sh: curl is missing on the client" >&2; exit 2; }
[ -n "${EPOCHREALTIME:-}" ] || { echo "load.sh: needs bash 5 (EPOCHREALTIME)" >&2; exit 2; }

now_us() { echo "${EPOCHREALTIME/./}"; }

start="$(now_us)"
deadline=$((start + max_s * 1000000))
max_requests=$((max_s * 100))
echo "# start $start $url timeout=${timeout}s"
i=0
while [ "$i" -lt "$max_requests" ] && [ ! -e "$stop" ]; do
    t0="$(now_us)"
    [ "$t0" -lt "$deadline" ] || break
    # -f: an HTTP error status (502/503 from the balancer) is a failure too.
    # curl's exit code says how it failed: 7 refused, 28 timed out, 22 an HTTP error.
    rc=0
    body="$(curl -sf --connect-timeout "$timeout" -m "$timeout" "$url" 2>/dev/null)" || rc=$?
    if [ "$rc" -eq 0 ]; then
        result=ok
    else
        result=fail
        body="curl-exit-$rc"
    fi
    body="${body//[[:space:]]/}"
    echo "$t0 $(now_us) $result ${body:--}"
    i=$((i + 1))
    sleep "$pause"
done
echo "# end $(now_us)"
