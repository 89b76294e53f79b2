#!/usr/bin/env bash
# Install tandem on a Debian box (or into a scratch root), or remove it again.
#
# Usage: appliance/install.sh [--root DIR] [--bin-dir DIR] [--uninstall [--purge]] [--help]
#
#   --root DIR      install into DIR instead of /: every path below is prefixed with DIR and
#                   nothing on the host changes (no useradd, no systemctl, no sysctl). The
#                   user and group are appended to DIR/etc/passwd and DIR/etc/group only if
#                   those files exist. Lets a non-root user install into a directory they
#                   can write.
#   --bin-dir DIR   where tandemd, tandemctl and tandem-probe are (default target/release,
#                   relative to the repository)
#   --uninstall     remove what this script installs; /etc/tandem/tandem.toml, the user and
#                   the group stay
#   --purge         with --uninstall: also remove /etc/tandem/tandem.toml (and /etc/tandem
#                   if then empty), /var/lib/tandem, /var/lib/tandem-witness, the user and
#                   the group
#   -h, --help      this text
#
# What it installs (see docs/operations.md, "Installing"):
#   $PREFIX/bin/{tandemd,tandemctl,tandem-probe}  0755   (PREFIX defaults to /usr)
#   /lib/systemd/system/tandemd.service           0644   (and tandem-witness.service)
#   /etc/tandem                                   0750 root:tandem
#   /etc/tandem/tandem.toml                       0640 root:tandem, only if absent
#   /etc/sysctl.d/60-tandem.conf                  0644   (applied with `sysctl --system`)
#   $PREFIX/share/man/man1/tandemd*.1, tandemctl*.1  0644 (man pages, one per subcommand)
#   bash, zsh and fish completions of tandemd and tandemctl under $PREFIX/share  0644
#     (bash-completion/completions, zsh/vendor-completions, fish/vendor_completions.d)
#   The man pages and completions are generated from the binaries (`generate-docs`), so
#   they always describe the binaries installed.
#   the system user and group `tandem` (no login shell, no home)
# /var/lib/tandem is made by systemd (StateDirectory= in the unit), not here.
#
# Idempotent: a second run changes nothing and says so. It does not enable or start the
# service: edit the config first, then `systemctl enable --now tandemd`.
#
# Environment: PREFIX (default /usr); TANDEM_INSTALL_PROC (default /proc: where the
# kernel check looks, for tests).

set -euo pipefail

PROG=${0##*/}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

ROOT=""
BIN_DIR="$REPO/target/release"
UNINSTALL=0
PURGE=0
PREFIX=${PREFIX:-/usr}
PROC=${TANDEM_INSTALL_PROC:-/proc}

CHANGES=0
NOTES=()

usage() {
    sed -n '2,/^$/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

die() {
    echo "$PROG: error: $*" >&2
    exit 1
}

# One line per thing looked at: "changed" lines count, "ok" lines do not.
did() {
    CHANGES=$((CHANGES + 1))
    printf '  %-10s %s\n' "$1" "$2"
}
same() {
    printf '  %-10s %s\n' "ok" "$1"
}
note() {
    NOTES+=("$*")
}

while (($#)); do
    case $1 in
        --root)
            (($# >= 2)) || die "--root needs a directory"
            ROOT=$2
            shift 2
            ;;
        --root=*)
            ROOT=${1#--root=}
            shift
            ;;
        --bin-dir)
            (($# >= 2)) || die "--bin-dir needs a directory"
            BIN_DIR=$2
            shift 2
            ;;
        --bin-dir=*)
            BIN_DIR=${1#--bin-dir=}
            shift
            ;;
        --uninstall)
            UNINSTALL=1
            shift
            ;;
        --purge)
            PURGE=1
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            die "unknown argument '$1' (try --help)"
            ;;
    esac
done

((PURGE == 0 || UNINSTALL == 1)) || die "--purge only goes with --uninstall"

# ---- preconditions -------------------------------------------------------------------

if [[ -n $ROOT ]]; then
    [[ -d $ROOT ]] || die "--root $ROOT is not a directory"
    ROOT=$(cd "$ROOT" && pwd)
    [[ $ROOT != / ]] || ROOT=""
fi

if [[ -n $ROOT ]]; then
    if ((EUID != 0)) && [[ ! -w $ROOT ]]; then
        die "--root $ROOT is not writable by $(id -un); run as root or pick a directory you own"
    fi
elif ((EUID != 0)); then
    die "installing into / needs root (run with sudo), or use --root DIR for a scratch root"
fi

[[ $(uname -s) == Linux ]] || die "tandem runs on Linux only (this is $(uname -s))"

if ((UNINSTALL == 0)); then
    # AF_PACKET and netlink are assumed on Linux; the VIP sysctls are not always there
    # (a kernel without IPv4, or a container with a fake /proc).
    for knob in net/ipv4/ip_nonlocal_bind net/ipv4/conf/all/arp_ignore net/ipv4/conf/all/arp_announce; do
        [[ -e $PROC/sys/$knob ]] ||
            die "this kernel lacks $PROC/sys/$knob (${knob//\//.}), which a VIP holder needs: no IPv4, or a restricted container"
    done
    [[ -d $BIN_DIR ]] || die "--bin-dir $BIN_DIR is not a directory (build with: cargo build --release)"
    BIN_DIR=$(cd "$BIN_DIR" && pwd)
    for bin in tandemd tandemctl tandem-probe; do
        [[ -x $BIN_DIR/$bin ]] || die "$BIN_DIR/$bin is missing or not executable (build with: cargo build --release)"
    done
    for src in systemd/tandemd.service systemd/tandem-witness.service \
        appliance/etc/sysctl.d/60-tandem.conf appliance/etc/tandem/tandem.toml; do
        [[ -f $REPO/$src ]] || die "$REPO/$src is missing"
    done
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Real installs only: systemctl when systemd runs here.
have_systemd() {
    [[ -z $ROOT ]] && [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null
}

# ---- helpers -------------------------------------------------------------------------

# The group id of `tandem` in the target, or nothing.
tandem_gid() {
    if [[ -z $ROOT ]]; then
        getent group tandem | cut -d: -f3
    elif [[ -f $ROOT/etc/group ]]; then
        awk -F: '$1 == "tandem" { print $3 }' "$ROOT/etc/group"
    fi
}

# install_file SRC DEST MODE [GROUP-OWNED]: copy when content, mode or owner differ.
install_file() {
    local src=$1 dest=$2 mode=$3 group=${4:-} owner="0:0" gid
    if [[ -n $group ]]; then
        gid=$(tandem_gid)
        if [[ -n $gid ]]; then owner="0:$gid"; fi
    fi
    local chown_ok=0
    if ((EUID == 0)); then chown_ok=1; fi
    if [[ -f $dest ]] && cmp -s "$src" "$dest" &&
        [[ $(stat -c %a "$dest") == "${mode#0}" ]] &&
        { ((chown_ok == 0)) || [[ $(stat -c %u:%g "$dest") == "$owner" ]]; }; then
        same "$dest"
        return
    fi
    local verb=installed
    if [[ -e $dest ]]; then verb=updated; fi
    mkdir -p "$(dirname "$dest")"
    install -m "$mode" "$src" "$dest.tandem-new"
    if ((chown_ok)); then chown "$owner" "$dest.tandem-new"; fi
    mv -f "$dest.tandem-new" "$dest"
    did "$verb" "$dest"
}

remove_file() {
    local path=$1
    if [[ -e $path || -L $path ]]; then
        rm -f "$path"
        did removed "$path"
    fi
}

remove_dir_if_empty() {
    local dir=$1
    [[ -d $dir ]] || return 0
    if rmdir "$dir" 2>/dev/null; then
        did removed "$dir"
    else
        note "$dir is not empty; left in place"
    fi
}

# ---- the contents --------------------------------------------------------------------

# The sysctl file and the config skeleton are files in appliance/etc/, shared with the
# Debian package (crates/tandemd/Cargo.toml, [package.metadata.deb]).
write_sysctl() {
    cat "$REPO/appliance/etc/sysctl.d/60-tandem.conf"
}

write_config() {
    cat "$REPO/appliance/etc/tandem/tandem.toml"
}

# The unit as shipped, with ExecStart and ExecReload (tandemd, tandemctl) pointing at
# $PREFIX/bin when PREFIX is not /usr.
write_unit() {
    if [[ $PREFIX == /usr ]]; then
        cat "$REPO/systemd/$1"
    else
        sed -e "s#/usr/bin/tandemd#$PREFIX/bin/tandemd#g" \
            -e "s#/usr/bin/tandemctl#$PREFIX/bin/tandemctl#g" "$REPO/systemd/$1"
    fi
}

# ---- user and group ------------------------------------------------------------------

# The highest id in 100..999 that FILE (passwd or group format) does not use.
free_system_id() {
    local file=$1 id
    for ((id = 999; id >= 100; id--)); do
        if ! awk -F: -v id="$id" '$3 == id { found = 1 } END { exit !found }' "$file"; then
            echo "$id"
            return
        fi
    done
    die "no free system id in 100..999 in $file"
}

ensure_user() {
    if [[ -z $ROOT ]]; then
        if getent group tandem >/dev/null; then
            same "group tandem"
        else
            groupadd --system tandem
            did created "group tandem"
        fi
        if getent passwd tandem >/dev/null; then
            same "user tandem"
        else
            useradd --system --gid tandem --no-create-home --home-dir /nonexistent \
                --shell /usr/sbin/nologin --comment "tandem load balancer" tandem
            did created "user tandem"
        fi
        return
    fi
    if [[ ! -f $ROOT/etc/passwd || ! -f $ROOT/etc/group ]]; then
        note "no $ROOT/etc/passwd or $ROOT/etc/group: user and group tandem not created (useradd --system tandem on the target)"
        return
    fi
    local gid uid
    gid=$(tandem_gid)
    if [[ -n $gid ]]; then
        same "group tandem in $ROOT/etc/group"
    else
        gid=$(free_system_id "$ROOT/etc/group")
        echo "tandem:x:$gid:" >>"$ROOT/etc/group"
        if [[ -f $ROOT/etc/gshadow ]]; then echo "tandem:!::" >>"$ROOT/etc/gshadow"; fi
        did created "group tandem ($gid) in $ROOT/etc/group"
    fi
    if awk -F: '$1 == "tandem" { found = 1 } END { exit !found }' "$ROOT/etc/passwd"; then
        same "user tandem in $ROOT/etc/passwd"
    else
        uid=$(free_system_id "$ROOT/etc/passwd")
        echo "tandem:x:$uid:$gid:tandem load balancer:/nonexistent:/usr/sbin/nologin" >>"$ROOT/etc/passwd"
        if [[ -f $ROOT/etc/shadow ]]; then echo "tandem:!*:::::::" >>"$ROOT/etc/shadow"; fi
        did created "user tandem ($uid) in $ROOT/etc/passwd"
    fi
}

remove_user() {
    if [[ -z $ROOT ]]; then
        if getent passwd tandem >/dev/null; then
            userdel tandem
            did removed "user tandem"
        fi
        if getent group tandem >/dev/null; then
            groupdel tandem
            did removed "group tandem"
        fi
        return
    fi
    local f
    for f in passwd shadow group gshadow; do
        [[ -f $ROOT/etc/$f ]] || continue
        if grep -q '^tandem:' "$ROOT/etc/$f"; then
            # Rewrite in place (keeps the file's mode and owner).
            grep -v '^tandem:' "$ROOT/etc/$f" >"$TMP/$f" || true
            cat "$TMP/$f" >"$ROOT/etc/$f"
            did removed "tandem from $ROOT/etc/$f"
        fi
    done
}

# ---- man pages and completions -------------------------------------------------------

# The binaries write them (`generate-docs DIR`, the layout of /usr/share); install
# every file they wrote, and remove pages of ours that they no longer write.
install_docs() {
    local bin gen="$TMP/share" file rel
    for bin in tandemd tandemctl; do
        "$BIN_DIR/$bin" generate-docs "$gen" >/dev/null ||
            die "$BIN_DIR/$bin generate-docs failed (the man pages and completions)"
    done
    while IFS= read -r file; do
        rel=${file#"$gen"/}
        install_file "$file" "$ROOT$PREFIX/share/$rel" 0644
    done < <(find "$gen" -type f | sort)
    for file in $(installed_docs); do
        [[ -e $gen/${file#"$ROOT$PREFIX/share/"} ]] || remove_file "$file"
    done
}

# Every man page and completion of ours under $ROOT$PREFIX/share, installed now.
installed_docs() {
    local bin f
    for bin in tandemd tandemctl; do
        for f in "$ROOT$PREFIX/share/man/man1/$bin.1" "$ROOT$PREFIX/share/man/man1/$bin"-*.1 \
            "$ROOT$PREFIX/share/bash-completion/completions/$bin" \
            "$ROOT$PREFIX/share/zsh/vendor-completions/_$bin" \
            "$ROOT$PREFIX/share/fish/vendor_completions.d/$bin.fish"; do
            if [[ -e $f ]]; then echo "$f"; fi
        done
    done
}

# ---- install -------------------------------------------------------------------------

do_install() {
    local bin unit gid conf="$ROOT/etc/tandem/tandem.toml"
    echo "installing tandem into ${ROOT:-/} (binaries from $BIN_DIR)"

    ensure_user

    for bin in tandemd tandemctl tandem-probe; do
        install_file "$BIN_DIR/$bin" "$ROOT$PREFIX/bin/$bin" 0755
    done

    local units_changed=$CHANGES
    for unit in tandemd.service tandem-witness.service; do
        write_unit "$unit" >"$TMP/$unit"
        install_file "$TMP/$unit" "$ROOT/lib/systemd/system/$unit" 0644
    done
    units_changed=$((CHANGES - units_changed))
    [[ $PREFIX == /usr ]] || note "PREFIX=$PREFIX: the installed units run $PREFIX/bin/tandemd"

    # /etc/tandem: 0750 root:tandem
    local dir="$ROOT/etc/tandem" want_owner="0:0"
    gid=$(tandem_gid)
    if [[ -n $gid ]]; then want_owner="0:$gid"; fi
    if [[ ! -d $dir ]]; then
        mkdir -p "$dir"
        chmod 0750 "$dir"
        if ((EUID == 0)); then chown "$want_owner" "$dir"; fi
        did created "$dir"
    elif [[ $(stat -c %a "$dir") != 750 ]] || { ((EUID == 0)) && [[ $(stat -c %u:%g "$dir") != "$want_owner" ]]; }; then
        chmod 0750 "$dir"
        if ((EUID == 0)); then chown "$want_owner" "$dir"; fi
        did fixed "$dir (0750 root:tandem)"
    else
        same "$dir"
    fi
    if ((EUID != 0)); then
        note "not root: $dir and its config are owned by $(id -un); make them root:tandem on the target"
    elif [[ -z $gid ]]; then
        note "no group tandem in the target: $dir and its config are root:root; chgrp them to tandem once it exists"
    fi

    # The config: only if absent, never overwritten.
    if [[ -e $conf ]]; then
        write_config >"$TMP/tandem.toml"
        if cmp -s "$TMP/tandem.toml" "$conf"; then
            same "$conf"
        else
            printf '  %-10s %s\n' "kept" "$conf (the operator's; not overwritten)"
        fi
    else
        write_config >"$TMP/tandem.toml"
        install_file "$TMP/tandem.toml" "$conf" 0640 group
    fi
    if ! "$BIN_DIR/tandemd" check-config "$conf" >"$TMP/check" 2>&1; then
        note "$conf has problems (tandemd check-config):"
        while IFS= read -r line; do note "  $line"; done <"$TMP/check"
    fi

    install_docs

    # sysctls
    local sysctl_file="$ROOT/etc/sysctl.d/60-tandem.conf"
    local sysctl_changed=$CHANGES
    write_sysctl >"$TMP/60-tandem.conf"
    install_file "$TMP/60-tandem.conf" "$sysctl_file" 0644
    sysctl_changed=$((CHANGES - sysctl_changed))

    if [[ -z $ROOT ]]; then
        if ((sysctl_changed)); then
            sysctl --system >/dev/null
            did applied "sysctl --system (ip_nonlocal_bind=1, arp_ignore=1, arp_announce=2)"
        fi
        if ((units_changed)) && have_systemd; then
            systemctl daemon-reload
            did ran "systemctl daemon-reload"
        fi
    else
        note "scratch root: no sysctl --system, no systemctl, no useradd on this host"
    fi
}

# ---- uninstall -----------------------------------------------------------------------

do_uninstall() {
    local bin unit
    echo "removing tandem from ${ROOT:-/}$( ((PURGE)) && echo ' (purge)')"

    if have_systemd; then
        for unit in tandemd.service tandem-witness.service; do
            if [[ -f /lib/systemd/system/$unit ]] && systemctl is-enabled --quiet "$unit" 2>/dev/null; then
                systemctl disable --quiet "$unit"
                did disabled "$unit"
            fi
            if systemctl is-active --quiet "$unit" 2>/dev/null; then
                systemctl stop "$unit"
                did stopped "$unit"
            fi
        done
    fi

    local units_changed=$CHANGES
    for unit in tandemd.service tandem-witness.service; do
        remove_file "$ROOT/lib/systemd/system/$unit"
    done
    units_changed=$((CHANGES - units_changed))
    for bin in tandemd tandemctl tandem-probe; do
        remove_file "$ROOT$PREFIX/bin/$bin"
    done
    local doc
    for doc in $(installed_docs); do
        remove_file "$doc"
    done
    local sysctl_changed=$CHANGES
    remove_file "$ROOT/etc/sysctl.d/60-tandem.conf"
    sysctl_changed=$((CHANGES - sysctl_changed))
    if ((sysctl_changed)) && [[ -z $ROOT ]]; then
        note "the running kernel keeps ip_nonlocal_bind, arp_ignore and arp_announce until reboot (or sysctl -w)"
    fi

    local conf="$ROOT/etc/tandem/tandem.toml"
    if ((PURGE)); then
        remove_file "$conf"
        remove_dir_if_empty "$ROOT/etc/tandem"
        local state
        for state in "$ROOT/var/lib/tandem" "$ROOT/var/lib/tandem-witness"; do
            if [[ -d $state ]]; then
                rm -rf "$state"
                did removed "$state"
            fi
        done
        remove_user
    else
        if [[ -e $conf ]]; then printf '  %-10s %s\n' "kept" "$conf (--purge removes it)"; fi
        if [[ -d $ROOT/etc/tandem ]] && [[ ! -e $conf ]]; then
            remove_dir_if_empty "$ROOT/etc/tandem"
        fi
        note "user and group tandem kept (--purge removes them)"
    fi

    if ((units_changed)) && have_systemd; then
        systemctl daemon-reload
        did ran "systemctl daemon-reload"
    fi
}

if ((UNINSTALL)); then
    do_uninstall
else
    do_install
fi

for n in "${NOTES[@]+"${NOTES[@]}"}"; do
    echo "note: $n"
done
if ((CHANGES == 0)); then
    echo "no changes: tandem is already $( ((UNINSTALL)) && echo removed || echo installed) in ${ROOT:-/}"
else
    echo "done: $CHANGES change(s) in ${ROOT:-/}"
fi
if ((UNINSTALL == 0 && CHANGES > 0)) && [[ -z $ROOT ]]; then
    echo "next: edit /etc/tandem/tandem.toml, then: systemctl enable --now tandemd"
fi
