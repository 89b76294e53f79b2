# shellcheck shell=bash disable=SC2034,SC2153 # globals shared with run.sh
# The drills' view of a target: the namespace lab (appliance/lab.sh up --cluster) or the
# Vagrant boxes (vagrant/Vagrantfile). Every drill is written against these functions only:
#
#   t_init                    check the target is there; set FWD, WITNESS, BACKENDS, VIP...
#   t_exec HOST CMD...        run CMD as root on HOST (stdin passed through)
#   t_ctl HOST ARGS...        tandemctl on a cluster member
#   t_holders                 the forwarding nodes that hold the VIP (address up, fence open)
#   t_prepare_crash NODE      make the next SIGKILL stick (Vagrant: no systemd restart)
#   t_crash NODE              SIGKILL the node's tandemd
#   t_stop NODE               SIGTERM (systemctl stop) and wait until it has exited
#   t_upgrade NODE            install the "new" binaries (Vagrant: install.sh again)
#   t_start NODE              start a node, the witness or a backend again
#   t_cut NODE PEER...        drop traffic between NODE and the PEERs only
#   t_heal                    undo every t_cut
#   t_kill_backend WEB        SIGKILL a backend's HTTP server
#   t_load_cmd                how to start lib/load.sh on the client (an array, LOAD_CMD)
#   t_touch_client FILE       create FILE on the client (stops a load)
#
# Sourced by run.sh, which sets TARGET, LIB, WORK and the lab or Vagrant options.

# ---------------------------------------------------------------- lab

lab_sh() { # lab_sh ARGS...: appliance/lab.sh on the drills' lab, output to the drill log
    bash "$REPO/appliance/lab.sh" --name "$LAB_NAME" --state-dir "$LAB_STATE_DIR" "$@" >>"$WORK/lab.log" 2>&1
}

lab_init() {
    [ "$(id -u)" -eq 0 ] || fail_run "--target lab needs root (network namespaces)"
    [ -f "$LAB_STATE_DIR/lab.env" ] ||
        fail_run "no lab '$LAB_NAME' in $LAB_STATE_DIR: start one with appliance/lab.sh --name $LAB_NAME --state-dir $LAB_STATE_DIR up --cluster"
    local MODE="" TANDEMCTL=""
    # shellcheck source=/dev/null
    . "$LAB_STATE_DIR/lab.env"
    [ "$MODE" = cluster ] ||
        fail_run "lab '$LAB_NAME' is a VRRP lab; the drills need a cluster lab (appliance/lab.sh up --cluster)"
    [ -e "/run/netns/tlab-$LAB_NAME-hub" ] || fail_run "lab '$LAB_NAME' has state but no namespaces: down, then up --cluster"
    LAB_CTL="$TANDEMCTL"
    FWD=(n1 n2)
    WITNESS=witness
    BACKENDS=(web1 web2)
    VIP=198.51.100.100
    URL="http://$VIP:8080/"
    POLL=0.1
    READY_S=30
    LOAD_PAUSE=0.02
}

# ---------------------------------------------------------------- vagrant

vg_init() {
    command -v vagrant >/dev/null 2>&1 || fail_run "--target vagrant needs vagrant on this machine"
    command -v ssh >/dev/null 2>&1 || fail_run "--target vagrant needs ssh"
    [ -f "$VAGRANT_DIR/Vagrantfile" ] || fail_run "no Vagrantfile in $VAGRANT_DIR"
    # One `vagrant ssh-config`, then plain ssh: `vagrant ssh` costs seconds per call.
    # TANDEM_VMS=ci (the Vagrantfile's CI set): web1 and web2 run on the client, so their
    # names are aliases of the client's ssh entry.
    local box boxes=(lb1 lb2 witness web1 web2 client) client_alias="Host client"
    if [ "${TANDEM_VMS:-full}" = ci ]; then
        boxes=(lb1 lb2 witness client)
        client_alias="Host client web1 web2"
    fi
    : >"$WORK/ssh-config"
    for box in "${boxes[@]}"; do
        (cd "$VAGRANT_DIR" && timeout 60 vagrant ssh-config "$box") 2>"$WORK/ssh-config.err" |
            sed "s/^Host client\$/$client_alias/" >>"$WORK/ssh-config"
        [ "${PIPESTATUS[0]}" -eq 0 ] ||
            fail_run "vagrant ssh-config $box failed (are the boxes up? cd $VAGRANT_DIR && vagrant up): $(cat "$WORK/ssh-config.err")"
    done
    FWD=(lb1 lb2)
    WITNESS=witness
    BACKENDS=(web1 web2)
    VIP="${VAGRANT_VIP:-192.0.2.100}"
    URL="http://$VIP:8080/"
    # How often the drills look at the nodes (a sudo, ip and nft on each forwarding VM per
    # look): VAGRANT_POLL=2 under emulation leaves the VMs' CPU to tandemd.
    POLL="${VAGRANT_POLL:-0.5}"
    # Before a drill, how long the cluster may take to settle (a VM under software
    # emulation takes seconds to re-elect and hand the VIP back after a restore).
    READY_S=90
    # Between two requests of the load: every curl is a process start on the client VM,
    # which costs real CPU under emulation.
    LOAD_PAUSE=0.1
    t_exec client true || fail_run "cannot reach the client box over ssh"
}

vg_ssh() { # vg_ssh HOST ARGS...
    local host="$1"
    shift
    # SSH_TIMEOUT: the load runs for minutes; everything else is short.
    # One ssh connection per VM, shared by every call (ControlMaster): a new handshake
    # costs a VM under emulation a second of CPU, and the drills poll.
    timeout "${SSH_TIMEOUT:-90}" ssh -F "$WORK/ssh-config" -o LogLevel=ERROR -o ConnectTimeout=10 -o BatchMode=yes \
        -o ControlMaster=auto -o "ControlPath=$WORK/ssh-%h" -o ControlPersist=300 "$host" -- "$@"
}

vg_service() { # the systemd unit that runs HOST's part
    case "$1" in
    lb*) echo tandemd ;;
    witness) echo tandem-witness ;;
    web*) echo "tandem-web-$1" ;;
    esac
}

vg_ip() { # addresses on the private network (vagrant/Vagrantfile)
    case "$1" in lb1) echo 192.0.2.11 ;; lb2) echo 192.0.2.12 ;; witness) echo 192.0.2.13 ;; esac
}

# ---------------------------------------------------------------- the interface

t_init() {
    case "$TARGET" in
    lab) lab_init ;;
    vagrant) vg_init ;;
    esac
    GROUP=front
}

t_exec() { # t_exec HOST CMD...
    local host="$1"
    shift
    if [ "$TARGET" = lab ]; then
        ip netns exec "tlab-$LAB_NAME-$host" "$@"
    else
        vg_ssh "$host" sudo "$(printf '%q ' "$@")"
    fi
}

t_ctl() { # t_ctl HOST ARGS...
    local host="$1"
    shift
    if [ "$TARGET" = lab ]; then
        timeout 20 "$LAB_CTL" --socket "$LAB_STATE_DIR/$host.sock" "$@"
    elif [ "$host" = witness ]; then
        t_exec "$host" tandemctl --socket /run/tandem-witness/admin.sock "$@"
    else
        t_exec "$host" tandemctl "$@"
    fi
}

# A node holds the VIP when the address is on an interface AND tandem's kernel fence (if
# the node has one: `nft list table inet tandem_fence`) lets it through: a SIGKILLed
# holder's address outlives its lease for a second or two, silenced by the fence.
t_holders() {
    local n out=()
    for n in "${FWD[@]}"; do
        # shellcheck disable=SC2016 # expanded by the remote shell
        if t_exec "$n" sh -c 'ip -4 -o addr show | grep -q " inet $1/" &&
            { ! nft list table inet tandem_fence >/dev/null 2>&1 ||
                nft list set inet tandem_fence held | grep -q "$1 "; }' sh "$VIP" 2>/dev/null; then
            out+=("$n")
        fi
    done
    echo "${out[*]:-}"
}

t_prepare_crash() {
    [ "$TARGET" = vagrant ] || return 0
    # Restart=on-failure would bring tandemd back after 1 s: a runtime drop-in turns it
    # off until t_start removes it.
    t_exec "$1" sh -c 'mkdir -p /run/systemd/system/tandemd.service.d &&
        printf "[Service]\nRestart=no\n" >/run/systemd/system/tandemd.service.d/zz-drill.conf &&
        systemctl daemon-reload'
}

t_crash() {
    if [ "$TARGET" = lab ]; then
        lab_sh kill "$1" --signal KILL
    else
        t_exec "$1" systemctl kill --signal=KILL tandemd
    fi
}

t_stop() {
    if [ "$TARGET" = lab ]; then
        lab_sh kill "$1" --signal TERM
        # Graceful: VRRP leaves, the lease is released, connections drain (1 s), Raft stops.
        local pidfile="$LAB_STATE_DIR/$1.tandemd.pid" pid
        pid="$(tr -dc '0-9' <"$pidfile")"
        for _ in $(seq 150); do
            kill -0 "$pid" 2>/dev/null || return 0
            sleep 0.1
        done
        return 1
    else
        t_exec "$1" systemctl stop "$(vg_service "$1")"
    fi
}

t_upgrade() {
    # The lab runs the same binary again; a VM installs again from the synced folder as
    # provisioning did (the .deb with dpkg -i, or install.sh with TANDEM_INSTALL=script;
    # vagrant rsync first to ship a new build), as an upgrade would.
    [ "$TARGET" = vagrant ] || return 0
    t_exec "$1" env TANDEM_DEB="${TANDEM_DEB:-}" TANDEM_INSTALL="${TANDEM_INSTALL:-deb}" \
        bash -c '. /vagrant/vagrant/provision/lib.sh && install_tandem' >>"$WORK/upgrade.log" 2>&1
}

t_start() {
    if [ "$TARGET" = lab ]; then
        lab_sh start "$1"
    else
        local unit
        unit="$(vg_service "$1")"
        t_exec "$1" sh -c "rm -f /run/systemd/system/$unit.service.d/zz-drill.conf && systemctl daemon-reload &&
            systemctl reset-failed $unit 2>/dev/null; systemctl start $unit"
    fi
}

t_cut() { # t_cut NODE PEER...
    local node="$1"
    shift
    if [ "$TARGET" = lab ]; then
        lab_sh partition --between "$node" "$@"
        return
    fi
    local p ips=""
    for p in "$@"; do ips+="${ips:+, }$(vg_ip "$p")"; done
    # On the node itself: its peers' addresses both ways, and VRRP (multicast adverts) out
    # and in. The client and the backends still reach it; ssh comes in on the NAT side.
    t_exec "$node" nft -f - <<EOF
table inet tandem_drill
delete table inet tandem_drill
table inet tandem_drill {
    chain input {
        type filter hook input priority -10; policy accept;
        ip saddr { $ips } drop
        ip protocol 112 drop
    }
    chain output {
        type filter hook output priority -10; policy accept;
        ip daddr { $ips } drop
        ip protocol 112 drop
    }
}
EOF
}

t_heal() {
    if [ "$TARGET" = lab ]; then
        lab_sh heal
        return
    fi
    local n
    for n in "${FWD[@]}" "$WITNESS"; do
        t_exec "$n" sh -c 'nft delete table inet tandem_drill 2>/dev/null || true'
    done
}

t_kill_backend() {
    if [ "$TARGET" = lab ]; then
        lab_sh kill "$1" --signal KILL
    else
        t_exec "$1" systemctl kill --signal=KILL "tandem-web-$1"
    fi
}

t_node_running() { # true while NODE's tandemd (or backend) process lives
    if [ "$TARGET" = lab ]; then
        local f="$LAB_STATE_DIR/$1.tandemd.pid" pid
        case "$1" in web*) f="$LAB_STATE_DIR/$1.http.pid" ;; esac
        [ -f "$f" ] || return 1
        pid="$(tr -dc '0-9' <"$f")"
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
            [ "$(ip netns identify "$pid" 2>/dev/null)" = "tlab-$LAB_NAME-$1" ]
    else
        t_exec "$1" systemctl is-active --quiet "$(vg_service "$1")"
    fi
}

# LOAD_CMD: the command that runs lib/load.sh on the client; its arguments follow.
t_load_cmd() {
    if [ "$TARGET" = lab ]; then
        LOAD_CMD=(ip netns exec "tlab-$LAB_NAME-client" bash "$LIB/load.sh")
    else
        LOAD_CMD=(vg_ssh client bash -s --)
    fi
}

t_load_input() { # what the load command reads on stdin
    if [ "$TARGET" = lab ]; then echo /dev/null; else echo "$LIB/load.sh"; fi
}

t_stop_file() { # t_stop_file TAG → a path on the client
    if [ "$TARGET" = lab ]; then echo "$WORK/load-$1.stop"; else echo "/tmp/tandem-drill-$$-$1.stop"; fi
}

t_touch_client() {
    if [ "$TARGET" = lab ]; then touch "$1"; else vg_ssh client touch "$1"; fi
}
