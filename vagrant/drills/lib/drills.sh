# shellcheck shell=bash disable=SC2034,SC2153 # globals shared with run.sh
# The five drills. Each: wait until the cluster is ready, start the client load, inject the
# fault, wait for recovery (bounded), stop the load, restore under a second load (reported,
# not bounded), and print the result line (run.sh's `result`). Sourced by run.sh.

run_drill() {
    OVERLAP=0
    case "$1" in
    crash-holder) drill_crash_holder ;;
    partition-holder) drill_partition_holder ;;
    planned-move) drill_planned_move ;;
    kill-backend) drill_kill_backend ;;
    rolling-upgrade) drill_rolling_upgrade ;;
    esac
}

# Reads load_stats of TAG into R_REQ R_FAILED R_GAP R_BACKENDS.
stats_of() { # stats_of TAG
    read -r R_REQ R_FAILED R_GAP R_BACKENDS < <(load_stats "$WORK/load-$1.out")
}

forget_down() { # forget_down NODE: it is back; cleanup need not start it
    local keep=() n
    for n in "${DOWN[@]}"; do [ "$n" = "$1" ] || keep+=("$n"); done
    DOWN=("${keep[@]}")
}

# Brings a stopped node back under load and reports what the client saw meanwhile. The
# drill has already measured its fault; this is the way back.
restore_node() { # restore_node TAG NODE
    local tag="$1" node="$2" h
    load_start "$tag" 90
    t_start "$node" || fail_run "could not start $node again (see $WORK/lab.log)"
    wait_whole "$node" "$((40 * WAIT_SCALE))" || fail_run "$node did not rejoin the cluster within $((40 * WAIT_SCALE)) s"
    forget_down "$node"
    # With preemption the higher-priority node takes the VIP back through Raft.
    if h="$(wait_holder "${FWD[0]}" "$((20 * WAIT_SCALE))")"; then
        say "restore: $node rejoined; $h holds the VIP again"
    else
        say "restore: $node rejoined; the VIP is on '$(t_holders)'"
    fi
    sleep 1
    load_stop
    stats_of "$tag"
    say "restore: $R_REQ requests, $R_FAILED failed, longest gap ${R_GAP} ms"
}

drill_crash_holder() {
    local holder other t0 took=-1
    holder="$(wait_ready)"
    other="$(other_of "$holder")"
    say "crash-holder: $holder holds the VIP; SIGKILL its tandemd under load, expect $other to take over"
    t_prepare_crash "$holder"
    load_start crash
    sleep 2
    DOWN+=("$holder")
    t0="$(now_ms)"
    t_crash "$holder"
    if wait_holder "$other" "$((20 * WAIT_SCALE))" >/dev/null; then took=$(($(now_ms) - t0)); fi
    say "$other holds the VIP ${took} ms after the kill (the lease wait, docs/cluster.md)"
    sleep 1
    load_stop
    stats_of crash
    local req="$R_REQ" failed="$R_FAILED" gap="$R_GAP"
    say "client: $req requests, $failed failed, longest gap ${gap} ms"
    restore_node crash-restore "$holder"
    result crash-holder "$req" "$failed" "$gap" "from=$holder to=$other took_ms=$took" \
        "$other took the VIP within $((20 * WAIT_SCALE)) s:$([ "$took" -ge 0 ] && echo 1 || echo 0)" \
        "longest gap ${gap} ms <= ${CRASH_MAX_MS} ms:$([ "$gap" -le "$CRASH_MAX_MS" ] && echo 1 || echo 0)"
}

drill_partition_holder() {
    local holder other t0 took=-1
    holder="$(wait_ready)"
    other="$(other_of "$holder")"
    say "partition-holder: $holder holds the VIP; cut it from $other and $WITNESS (the client still reaches it)"
    load_start partition
    sleep 2
    CUT=1
    t0="$(now_ms)"
    t_cut "$holder" "$other" "$WITNESS"
    # Exactly the other node: the cut-off holder must have dropped the VIP (no majority).
    if wait_holder "$other" "$((20 * WAIT_SCALE))" >/dev/null; then took=$(($(now_ms) - t0)); fi
    say "$holder dropped the VIP and $other holds it ${took} ms after the cut"
    sleep 1
    load_stop
    stats_of partition
    local req="$R_REQ" failed="$R_FAILED" gap="$R_GAP"
    say "client: $req requests, $failed failed, longest gap ${gap} ms"
    load_start partition-restore 90
    t_heal
    CUT=0
    wait_whole "$holder" "$((40 * WAIT_SCALE))" || fail_run "$holder did not see a whole cluster within $((40 * WAIT_SCALE)) s of the heal"
    if wait_holder "${FWD[0]}" "$((20 * WAIT_SCALE))" >/dev/null; then
        say "restore: healed; ${FWD[0]} holds the VIP again"
    else
        say "restore: healed; the VIP is on '$(t_holders)'"
    fi
    sleep 1
    load_stop
    stats_of partition-restore
    say "restore: $R_REQ requests, $R_FAILED failed, longest gap ${R_GAP} ms"
    result partition-holder "$req" "$failed" "$gap" "from=$holder to=$other took_ms=$took" \
        "$holder dropped the VIP and $other took it within $((20 * WAIT_SCALE)) s:$([ "$took" -ge 0 ] && echo 1 || echo 0)" \
        "longest gap ${gap} ms <= ${PARTITION_MAX_MS} ms:$([ "$gap" -le "$PARTITION_MAX_MS" ] && echo 1 || echo 0)"
}

drill_planned_move() {
    local holder other t0 took=-1 out
    holder="$(wait_ready)"
    other="$(other_of "$holder")"
    say "planned-move: $holder holds the VIP; tandemctl vip move $GROUP $other under load"
    load_start move
    sleep 2
    t0="$(now_ms)"
    out="$(t_ctl "$holder" vip move "$GROUP" "$other" 2>&1)" || { load_stop; fail_run "vip move failed: $out"; }
    say "tandemctl: $out"
    if wait_holder "$other" "$((10 * WAIT_SCALE))" >/dev/null; then took=$(($(now_ms) - t0)); fi
    say "$other holds the VIP ${took} ms after the command"
    sleep 1
    load_stop
    stats_of move
    local req="$R_REQ" failed="$R_FAILED" gap="$R_GAP"
    say "client: $req requests, $failed failed, longest gap ${gap} ms"
    # Back: unpin; with preemption the higher-priority node takes the VIP back.
    load_start move-restore 60
    out="$(t_ctl "$other" vip move "$GROUP" --auto 2>&1)" || { load_stop; fail_run "vip move --auto failed: $out"; }
    if wait_holder "${FWD[0]}" "$((15 * WAIT_SCALE))" >/dev/null; then
        say "restore: $out; ${FWD[0]} holds the VIP again"
    else
        say "restore: $out; the VIP is on '$(t_holders)'"
    fi
    sleep 1
    load_stop
    stats_of move-restore
    say "restore: $R_REQ requests, $R_FAILED failed, longest gap ${R_GAP} ms"
    result planned-move "$req" "$failed" "$gap" "from=$holder to=$other took_ms=$took" \
        "$other took the VIP within $((10 * WAIT_SCALE)) s:$([ "$took" -ge 0 ] && echo 1 || echo 0)" \
        "failed $failed <= $MOVE_MAX_FAILED:$([ "$failed" -le "$MOVE_MAX_FAILED" ] && echo 1 || echo 0)" \
        "longest gap ${gap} ms <= ${MOVE_MAX_MS} ms:$([ "$gap" -le "$MOVE_MAX_MS" ] && echo 1 || echo 0)"
}

# The health a forwarding node's pool "web" shows for BACKEND (up, down, or nothing).
backend_health() { # backend_health NODE BACKEND
    t_ctl "$1" backends 2>/dev/null | awk -v b="$2" '$1 == b { print $4; exit }'
}

wait_backend() { # wait_backend NODE BACKEND HEALTH LIMIT_S
    local t0
    t0="$(date +%s)"
    while [ $(($(date +%s) - t0)) -lt "$4" ]; do
        [ "$(backend_health "$1" "$2")" = "$3" ] && return 0
        sleep "$POLL"
    done
    return 1
}

drill_kill_backend() {
    local holder web="${BACKENDS[0]}" t0 took=-1
    holder="$(wait_ready)"
    wait_backend "$holder" "$web" up "$((20 * WAIT_SCALE))" || fail_run "$web is not up on $holder before the drill (tandemctl backends)"
    say "kill-backend: SIGKILL $web's HTTP server under load (through $holder)"
    load_start backend
    sleep 2
    DOWN+=("$web")
    t0="$(now_ms)"
    t_kill_backend "$web"
    if wait_backend "$holder" "$web" down "$((20 * WAIT_SCALE))"; then took=$(($(now_ms) - t0)); fi
    say "$holder's health checks marked $web down ${took} ms after the kill"
    load_stop
    stats_of backend
    local req1="$R_REQ" failed1="$R_FAILED" gap1="$R_GAP"
    # Once it is marked down, nothing may fail and only the others answer.
    load_start backend-down 30
    sleep 3
    load_stop
    stats_of backend-down
    local req2="$R_REQ" failed2="$R_FAILED" gap2="$R_GAP" seen2="$R_BACKENDS"
    say "client: before the mark $req1 requests, $failed1 failed; after it $req2 requests, $failed2 failed, answered by $seen2"
    t_start "$web" || fail_run "could not start $web again"
    if wait_backend "$holder" "$web" up "$((20 * WAIT_SCALE))"; then
        forget_down "$web"
        say "restore: $web is up again on $holder"
    else
        fail_run "$web did not come back up on $holder within $((20 * WAIT_SCALE)) s"
    fi
    local req=$((req1 + req2)) failed=$((failed1 + failed2)) gap=$((gap1 > gap2 ? gap1 : gap2))
    result kill-backend "$req" "$failed" "$gap" "backend=$web marked_down_ms=$took failed_after_down=$failed2" \
        "$web marked down within $((20 * WAIT_SCALE)) s:$([ "$took" -ge 0 ] && echo 1 || echo 0)" \
        "failed $failed <= $BACKEND_MAX_FAILED:$([ "$failed" -le "$BACKEND_MAX_FAILED" ] && echo 1 || echo 0)" \
        "no failure once $web is down ($failed2):$([ "$failed2" -eq 0 ] && echo 1 || echo 0)" \
        "$web gets nothing once down (answered by $seen2):$(case ",$seen2," in *",$web,"*) echo 0 ;; *) echo 1 ;; esac)"
}

drill_rolling_upgrade() {
    local holder n h t0 rejoined=0
    holder="$(wait_ready)"
    say "rolling-upgrade: ${FWD[*]} one after the other (holder now $holder)"
    load_start rolling 180
    sleep 2
    for n in "${FWD[@]}"; do
        t0="$(now_ms)"
        DOWN+=("$n")
        t_stop "$n" || fail_run "$n did not stop within $((15 * WAIT_SCALE)) s of SIGTERM"
        say "$n stopped (SIGTERM) in $(($(now_ms) - t0)) ms; VIP on '$(t_holders)'"
        t_upgrade "$n" || fail_run "upgrading $n failed (see $WORK/upgrade.log)"
        sleep 1
        t0="$(now_ms)"
        t_start "$n" || fail_run "could not start $n again"
        if wait_whole "$n" "$((40 * WAIT_SCALE))"; then
            rejoined=$((rejoined + 1))
            forget_down "$n"
            say "$n started and rejoined in $(($(now_ms) - t0)) ms"
        else
            fail_run "$n did not rejoin the cluster within $((40 * WAIT_SCALE)) s"
        fi
        # Let the VIP settle (preemption) before the next node goes.
        if h="$(wait_holder "${FWD[0]}" "$((20 * WAIT_SCALE))")"; then say "$h holds the VIP"; fi
        sleep 1
    done
    load_stop
    stats_of rolling
    say "client: $R_REQ requests, $R_FAILED failed, longest gap ${R_GAP} ms"
    result rolling-upgrade "$R_REQ" "$R_FAILED" "$R_GAP" "nodes=$(IFS=,; echo "${FWD[*]}") rejoined=$rejoined" \
        "every node rejoined:$([ "$rejoined" -eq "${#FWD[@]}" ] && echo 1 || echo 0)" \
        "failed $R_FAILED <= $ROLLING_MAX_FAILED:$([ "$R_FAILED" -le "$ROLLING_MAX_FAILED" ] && echo 1 || echo 0)" \
        "longest gap ${R_GAP} ms <= ${ROLLING_MAX_MS} ms:$([ "$R_GAP" -le "$ROLLING_MAX_MS" ] && echo 1 || echo 0)"
}
