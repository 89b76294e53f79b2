# shellcheck shell=bash disable=SC2153 # the globals come from lab.sh and lab.env
# appliance/lab.sh's commands, for both kinds of lab: up (dispatch), down, status, kill,
# start, partition, heal, probe, drill (dispatch), logs.

cmd_up() {
    local a
    for a in "$@"; do
        if [ "$a" = --cluster ]; then
            cluster_up "$@"
            return
        fi
    done
    vrrp_up "$@"
}

cmd_down() {
    local ns pid f pids=() n
    [ $# -eq 0 ] || die "down takes no arguments"
    # Recorded PIDs first, gracefully: TERM, up to 3 s, then KILL.
    if [ -d "$STATE_DIR" ]; then
        for f in "$STATE_DIR"/*.pid; do
            [ -e "$f" ] || continue
            pid="$(read_pid "$f")"
            n="$(basename "$f")"
            n="${n%%.*}"
            case "$n" in
            probe) ns="$CLIENT_NS" ;;
            *) ns="$PREFIX-$n" ;;
            esac
            if [ -n "$pid" ] && alive "$pid" "$ns"; then
                kill -CONT "$pid" 2>/dev/null || true
                kill -TERM "$pid" 2>/dev/null || true
                pids+=("$pid:$ns")
            fi
        done
    fi
    local p left
    for _ in $(seq 30); do
        left=0
        for p in "${pids[@]}"; do
            alive "${p%%:*}" "${p#*:}" && left=1
        done
        [ "$left" -eq 0 ] && break
        sleep 0.1
    done
    for p in "${pids[@]}"; do
        if alive "${p%%:*}" "${p#*:}"; then kill -KILL "${p%%:*}" 2>/dev/null || true; fi
    done
    # Anything else still inside the lab's namespaces was started in the lab (a probe, a
    # forked backend, a shell someone opened there): end it by PID, or the namespace lives on.
    for ns in $(lab_namespaces); do
        for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
            warn "ending PID $pid ($(ps -o comm= -p "$pid" 2>/dev/null || echo '?')) left in $ns"
            kill -KILL "$pid" 2>/dev/null || true
        done
    done
    # Nodes and client, then the hub (the veth pairs go with it).
    local hub_seen=0
    for ns in $(lab_namespaces); do
        if [ "$ns" = "$HUB" ]; then hub_seen=1; continue; fi
        ip netns del "$ns" 2>/dev/null || warn "could not delete namespace $ns"
    done
    if [ "$hub_seen" -eq 1 ]; then
        ip netns del "$HUB" 2>/dev/null || warn "could not delete namespace $HUB"
    fi
    if [ -d "$STATE_DIR" ]; then
        rm -f "$STATE_DIR"/*.pid "$STATE_DIR/lab.env"
    fi
    if [ -n "$(lab_namespaces)" ]; then
        die "namespaces left: $(lab_namespaces | tr '\n' ' ')"
    fi
    if [ -d "$STATE_DIR" ]; then
        say "lab '$NAME' is down (logs and configs kept in $STATE_DIR)"
    else
        say "lab '$NAME' is down"
    fi
}

cmd_status() {
    local k n ns impl pid st procs vip lft line mac who neigh tables
    load_state
    if [ "$MODE" = cluster ]; then
        echo "lab '$NAME' (cluster): n1, n2 forwarding, witness, web1, web2, client; advert interval $INTERVAL, VIP $VIP/$VIP_PREFIX vrid $VRID (:$WEB_PORT http, :$PORT who), state in $STATE_DIR"
    else
        echo "lab '$NAME': $NODES node(s), advert interval $INTERVAL, VIP $VIP/$VIP_PREFIX vrid $VRID, state in $STATE_DIR"
    fi
    echo "tandemd: $TANDEMD"
    printf '%-4s %-10s %-5s %-44s %-10s %-10s %s\n' node impl prio processes vip lifetime "last state"
    for k in $(seq "$NODES"); do
        n="n$k"
        ns="$(ns_of "$n")"
        impl="$(impl_of "$n")"
        procs=""
        if [ "$impl" = keepalived ]; then
            pid="$(read_pid "$STATE_DIR/$n.keepalived.pid")"
            st="$(proc_state "$pid" "$ns")"
            procs="keepalived ${pid:--} $st"
            pid="$(read_pid "$STATE_DIR/$n.ka-vrrp.pid")"
            procs="$procs (vrrp ${pid:--} $(proc_state "$pid" "$ns")), "
            pid="$(read_pid "$STATE_DIR/$n.tandemd.pid")"
            procs="${procs}tandemd ${pid:--} $(proc_state "$pid" "$ns")"
        else
            pid="$(read_pid "$STATE_DIR/$n.tandemd.pid")"
            procs="tandemd ${pid:--} $(proc_state "$pid" "$ns")"
        fi
        if has_vip "$n"; then
            vip=HOLDS-VIP
            lft="$(vip_lifetime "$n")"
        else
            vip=-
            lft=-
        fi
        printf '%-4s %-10s %-5s %-44s %-10s %-10s %s\n' "$n" "$impl" "$(priority_of "$k")" "$procs" "$vip" "${lft:-?}" "$(last_state "$n")"
    done
    if [ "$MODE" = cluster ]; then cluster_status_hosts; fi
    line="$(ip -n "$CLIENT_NS" neigh show "$VIP" dev eth0 2>/dev/null | head -n 1 || true)"
    mac="$(awk '{for (i = 1; i <= NF; i++) if ($i == "lladdr") print $(i+1)}' <<<"$line")"
    who="?"
    for k in $(seq "$NODES"); do
        [ "$mac" = "$(printf '02:00:00:00:00:%02x' "$k")" ] && who="n$k"
    done
    if [ -n "$mac" ]; then
        neigh="$mac = $who ($(awk '{print $NF}' <<<"$line"))"
    else
        neigh="none${line:+ ($line)}"
    fi
    echo "client neighbour entry for $VIP: $neigh"
    tables="$(ip netns exec "$HUB" nft list tables 2>/dev/null | awk '{print $3}' | tr '\n' ' ' || true)"
    echo "partitions: ${tables:-none}"
    if [ "$MODE" = cluster ]; then cluster_status_raft; fi
}

cmd_kill() {
    local node="" sig=KILL
    load_state
    while [ $# -gt 0 ]; do
        case "$1" in
        --signal) sig="${2:?--signal needs KILL, TERM, STOP or CONT}"; shift 2 ;;
        -*) die "kill: unknown option '$1'" ;;
        *) [ -z "$node" ] || die "kill: one node at a time"; node="$1"; shift ;;
        esac
    done
    [ -n "$node" ] || die "kill: which node? e.g. '$ME kill n1'"
    check_node "$node"
    sig="${sig#SIG}"
    case "$sig" in KILL | TERM | STOP | CONT) ;; *) die "--signal must be KILL, TERM, STOP or CONT" ;; esac
    node_alive "$node" || die "$node has no live process (start it with '$ME --name $NAME start $node')"
    kill_node "$node" "$sig"
    say "sent SIG$sig to $node ($(host_kind "$node"): PIDs $(node_pids "$node" | tr '\n' ' '))"
}

cmd_start() {
    [ $# -eq 1 ] || die "start: name one node, e.g. '$ME start n1'"
    load_state
    check_node "$1"
    local k="${1#n}"
    node_alive "$1" && die "$1 is still running (kill it first, or '--signal CONT' a stopped one)"
    if [ "$MODE" = cluster ]; then
        cluster_start_host "$1"
        say "started $1 ($(host_kind "$1"))"
        return
    fi
    if ! alive "$(read_pid "$STATE_DIR/$1.who.pid")" "$(ns_of "$1")"; then
        start_who "$k"
    fi
    start_node "$k"
    say "started $1 ($(impl_of "$1"))"
}

cmd_partition() {
    load_state
    [ $# -gt 0 ] || die "partition: name nodes (partition n1), --vrrp, or --between NODE PEER..."
    if [ "$1" = --between ]; then
        shift
        partition_between "$@"
        return
    fi
    if [ "$1" = --one-way ]; then
        shift
        partition_one_way "$@"
        return
    fi
    if [ "$1" = --loss ]; then
        shift
        partition_loss "$@"
        return
    fi
    if [ "$1" = --vrrp ]; then
        [ $# -eq 1 ] || die "partition --vrrp takes no nodes"
        ip netns exec "$HUB" nft -f - <<'EOF'
table bridge lab_vrrp
flush table bridge lab_vrrp
table bridge lab_vrrp {
    chain forward {
        type filter hook forward priority 0; policy accept;
        ip protocol 112 drop
    }
}
EOF
        say "VRRP (protocol 112) dropped between all nodes; '$ME --name $NAME heal' to undo"
        return
    fi
    local n
    for n in "$@"; do check_node "$n"; done
    for n in "$@"; do
        ip netns exec "$HUB" nft -f - <<EOF
table bridge lab_iso_$n
flush table bridge lab_iso_$n
table bridge lab_iso_$n {
    chain forward {
        type filter hook forward priority 0; policy accept;
        iifname "v$n" drop
        oifname "v$n" drop
    }
}
EOF
    done
    say "isolated $* (all traffic, both ways, at the bridge); '$ME --name $NAME heal' to undo"
}

# Drops the traffic between NODE and each PEER at the bridge (both ways), nothing else: a
# node cut off from its cluster peers that the client and the backends still reach.
partition_between() { # partition_between NODE PEER...
    [ $# -ge 2 ] || die "partition --between: name a node and at least one peer, e.g. 'partition --between n1 n2 witness'"
    local node="$1" p rules=""
    shift
    check_node "$node"
    for p in "$@"; do
        check_node "$p"
        [ "$p" != "$node" ] || die "partition --between: $node cannot be cut from itself"
        rules+="        iifname \"v$node\" oifname \"v$p\" drop
        iifname \"v$p\" oifname \"v$node\" drop
"
    done
    ip netns exec "$HUB" nft -f - <<EOF
table bridge lab_cut_$node
flush table bridge lab_cut_$node
table bridge lab_cut_$node {
    chain forward {
        type filter hook forward priority 0; policy accept;
$rules    }
}
EOF
    say "cut $node from $* (both ways, at the bridge; everyone else still reaches it); '$ME --name $NAME heal' to undo"
}

# Drops what FROM sends to each PEER at the bridge, nothing the other way: FROM still hears
# them (a one-way cut). `partition --one-way n2 n1` with n1 also sent to: n1 is deaf to n2.
partition_one_way() { # partition_one_way FROM PEER...
    [ $# -ge 2 ] || die "partition --one-way: name a sender and at least one receiver, e.g. 'partition --one-way n2 n1'"
    local from="$1" p rules=""
    shift
    check_node "$from"
    for p in "$@"; do
        check_node "$p"
        [ "$p" != "$from" ] || die "partition --one-way: $from cannot be cut from itself"
        rules+="        iifname \"v$from\" oifname \"v$p\" drop
"
    done
    ip netns exec "$HUB" nft -f - <<EOF
table bridge lab_oneway_$from
flush table bridge lab_oneway_$from
table bridge lab_oneway_$from {
    chain forward {
        type filter hook forward priority 0; policy accept;
$rules    }
}
EOF
    say "dropping what $from sends to $* (one way, at the bridge); '$ME --name $NAME heal' to undo"
}

# Drops PCT % of the packets between every two of the named nodes, at random, both ways
# (the client's and the backends' traffic untouched).
partition_loss() { # partition_loss PCT NODE NODE...
    local pct="${1:-}" a b rules=""
    [[ "$pct" =~ ^[0-9]+$ ]] && [ "$pct" -ge 1 ] && [ "$pct" -le 100 ] || die "partition --loss: a percentage 1..100 first, e.g. 'partition --loss 10 n1 n2 witness'"
    shift
    [ $# -ge 2 ] || die "partition --loss: name at least two nodes"
    for a in "$@"; do check_node "$a"; done
    for a in "$@"; do
        for b in "$@"; do
            [ "$a" != "$b" ] || continue
            rules+="        iifname \"v$a\" oifname \"v$b\" numgen random mod 100 < $pct drop
"
        done
    done
    ip netns exec "$HUB" nft -f - <<EOF
table bridge lab_loss
flush table bridge lab_loss
table bridge lab_loss {
    chain forward {
        type filter hook forward priority 0; policy accept;
$rules    }
}
EOF
    say "dropping $pct % of the packets between $* at random (both ways); '$ME --name $NAME heal' to undo"
}

cmd_heal() {
    [ $# -eq 0 ] || die "heal takes no arguments"
    load_state
    ip netns exec "$HUB" nft flush ruleset
    say "partitions removed"
}

cmd_probe() {
    local duration=10s
    while [ $# -gt 0 ]; do
        case "$1" in
        --duration) duration="${2:?--duration needs a value, e.g. 10s}"; shift 2 ;;
        *) die "probe: unknown argument '$1'" ;;
        esac
    done
    local ms
    ms="$(to_ms "$duration")" || die "--duration must look like 10s or 500ms"
    if [ "$ms" -lt 100 ] || [ "$ms" -gt 3600000 ]; then die "--duration must be 100ms..3600s"; fi
    load_state
    need_probe
    ip netns exec "$CLIENT_NS" "$PROBE" "$VIP_TARGET" --interval 10ms --duration "$duration"
}

cmd_logs() {
    [ $# -eq 1 ] || die "logs: name one node, e.g. '$ME logs n1'"
    load_state
    check_node "$1"
    local f
    for f in "$STATE_DIR/$1.keepalived.log" "$STATE_DIR/$1.log" "$STATE_DIR/$1.who.log"; do
        [ -f "$f" ] || continue
        echo "==> $f <=="
        cat "$f"
    done
}

cmd_drill() {
    load_state
    if [ "$MODE" = cluster ]; then
        cluster_drill "$@"
    else
        vrrp_drill "$@"
    fi
}
