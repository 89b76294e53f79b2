# shellcheck shell=bash
# Shared by the provisioning scripts (each box runs them as root from the synced folder,
# /vagrant being the repository). Sourced as /vagrant/vagrant/provision/lib.sh.

SRC=/vagrant
BIN_DIR="$SRC/target/release"
PKI_DIR="$SRC/vagrant/.pki"
CERT_DIR=/etc/tandem/cluster
RAFT_PORT=7300

say() { echo "provision[$(hostname)]: $*"; }
die() {
    echo "provision[$(hostname)]: error: $*" >&2
    exit 1
}

# Installs the Debian packages given that are missing (apt-get update only then).
apt_need() {
    local p missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# tandem from the synced folder: the project's .deb (TANDEM_DEB, a path in the repository;
# the Vagrantfile passes the newest target/debian/tandem_*.deb), so the package's
# maintainer scripts, units and sysctls run for real; or, with TANDEM_INSTALL=script,
# appliance/install.sh over target/release. An installed package is upgraded in place
# (the rolling-upgrade drill calls this too); the config written by provisioning stays.
install_tandem() {
    local b deb
    if [ "${TANDEM_INSTALL:-deb}" = script ]; then
        for b in tandemd tandemctl tandem-probe; do
            [ -x "$BIN_DIR/$b" ] || die "$BIN_DIR/$b is missing: run 'cargo build --release' on the host, then 'vagrant rsync' (or 'vagrant up' again)"
        done
        "$SRC/appliance/install.sh" --bin-dir "$BIN_DIR"
        return
    fi
    deb="${TANDEM_DEB:-}"
    [ -n "$deb" ] || deb="$(cd "$SRC" && ls -t target/debian/tandem_*.deb 2>/dev/null | head -1)"
    [ -n "$deb" ] && [ -f "$SRC/$deb" ] ||
        die "no tandem .deb in $SRC/target/debian: run appliance/build-deb.sh on the host, then 'vagrant rsync' (or set TANDEM_INSTALL=script)"
    say "installing $deb"
    DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold "$SRC/$deb" >/dev/null
    dpkg-query -W -f='${Package} ${Version} ${Status}\n' tandem | grep -q "install ok installed" ||
        die "dpkg left tandem unconfigured: $(dpkg-query -W -f='${Status}' tandem 2>&1)"
}

# This member's certificate and key plus the CA certificate (docs/cluster.md, step 2).
install_pki() { # install_pki NAME
    local name="$1" f
    for f in ca.pem "$name.pem" "$name.key"; do
        [ -f "$PKI_DIR/$f" ] || die "$PKI_DIR/$f is missing: the host trigger (provision/host-pki.sh) makes it before 'vagrant up'"
    done
    install -d -m 0750 -o root -g tandem "$CERT_DIR"
    install -m 0644 -o root -g root "$PKI_DIR/ca.pem" "$PKI_DIR/$name.pem" "$CERT_DIR/"
    install -m 0600 -o tandem -g tandem "$PKI_DIR/$name.key" "$CERT_DIR/"
}

# `{ lb1 = "192.0.2.11", ... }` for node.cluster.hosts: the members other than NAME.
hosts_toml() { # hosts_toml NAME "lb1=IP,lb2=IP,..."
    local name="$1" entry out=""
    local IFS=,
    for entry in $2; do
        case "${entry%%=*}" in
        lb* | witness) [ "${entry%%=*}" = "$name" ] || out+="${out:+, }${entry%%=*} = \"${entry#*=}\"" ;;
        esac
    done
    echo "{ $out }"
}

# The interface that carries ADDRESS (the private network's; eth1 on most boxes).
iface_of() { # iface_of ADDRESS
    ip -o -4 addr show | awk -v a="$1" 'index($4, a "/") == 1 { print $2; exit }'
}

# Joins this node through SEED unless it is a member already (re-provisioning). The seed
# may still be starting (libvirt brings boxes up in parallel): bounded retries.
join_cluster() { # join_cluster SOCKET NAME SEED
    local socket="$1" name="$2" seed="$3" out
    for _ in $(seq 60); do
        out="$(tandemctl --socket "$socket" cluster status 2>&1 || true)"
        if grep -q "^[0-9][0-9]* *$name:$RAFT_PORT " <<<"$out"; then
            say "$name is a cluster member already"
            return 0
        fi
        if out="$(tandemctl --socket "$socket" cluster join "$seed:$RAFT_PORT" 2>&1)"; then
            say "$out"
            return 0
        fi
        sleep 5
    done
    die "could not join through $seed:$RAFT_PORT within 5 minutes: $out"
}
