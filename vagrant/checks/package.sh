#!/usr/bin/env bash
# The package and its systemd unit on a booted VM with a real systemd (what the scratch-root
# tests cannot see). Runs ON a VM without tandem (the client), as root, from the synced
# folder; scripts/vms runs it over ssh:
#
#   vagrant ssh client -c 'sudo bash /vagrant/vagrant/checks/package.sh target/debian/tandem_X.deb'
#
# In order: dpkg -i (user, unit, sysctls); systemctl start returns only once tandemd is
# ready (Type=notify: the admin socket answers at once); the watchdog is armed and fed;
# the process runs as tandem with exactly its three capabilities; systemd-analyze security
# on the running unit; systemctl reload applies a good config and fails on a bad one,
# leaving the running config; systemctl stop; dpkg -r leaves the conffiles and the user,
# dpkg --purge leaves nothing; then appliance/install.sh on the same machine: install,
# start, stop, --uninstall --purge. One line per check; the first failure ends the run
# (exit 1) with what was seen.
set -euo pipefail
SRC=/vagrant
deb="${1:?usage: package.sh DEB (a path in the repository)}"
[ "$(id -u)" -eq 0 ] || { echo "package.sh: run as root" >&2; exit 2; }
[ -f "$SRC/$deb" ] || { echo "package.sh: no $SRC/$deb" >&2; exit 2; }
dpkg-query -W tandem >/dev/null 2>&1 && { echo "package.sh: tandem is installed already: run on a VM without it (the client)" >&2; exit 2; }

ok() { echo "check $1: ok${2:+ ($2)}"; }
fail() {
    echo "check $1: FAILED: $2" >&2
    journalctl -u tandemd --no-pager -n 20 >&2 2>/dev/null || true
    exit 1
}
main_pid() { systemctl show -p MainPID --value tandemd; }
# Writes the packaged skeleton (a listener on 127.0.0.1:PORT) as the config.
config_on_port() { # config_on_port PORT
    sed "s/127\\.0\\.0\\.1:8080/127.0.0.1:$1/" "$SRC/appliance/etc/tandem/tandem.toml" >/etc/tandem/tandem.toml
}
listening() { ss -Hltn "sport = :$1" | grep -q .; }

# ---- dpkg -i
DEBIAN_FRONTEND=noninteractive dpkg -i "$SRC/$deb" >/tmp/package-check.dpkg.log 2>&1 ||
    fail dpkg-install "$(tail -5 /tmp/package-check.dpkg.log)"
[ "$(dpkg-query -W -f='${Status}' tandem)" = "install ok installed" ] || fail dpkg-install "status $(dpkg-query -W -f='${Status}' tandem)"
getent passwd tandem >/dev/null || fail dpkg-install "no user tandem"
[ "$(stat -c '%a %U:%G' /etc/tandem)" = "750 root:tandem" ] || fail dpkg-install "/etc/tandem is $(stat -c '%a %U:%G' /etc/tandem)"
[ "$(sysctl -n net.ipv4.ip_nonlocal_bind)" = 1 ] || fail dpkg-install "postinst did not apply net.ipv4.ip_nonlocal_bind"
systemctl cat tandemd >/dev/null 2>&1 || fail dpkg-install "systemd does not know tandemd.service"
! systemctl is-enabled --quiet tandemd || fail dpkg-install "the package enabled tandemd (it must not)"
dpkg-query -L tandem | sort >/tmp/package-check.files
ok dpkg-install "$(dpkg-query -W -f='${Version}' tandem), $(wc -l </tmp/package-check.files) paths"

# ---- start: Type=notify, so the admin API answers as soon as systemctl returns
config_on_port 18080
t0=$(date +%s%N)
systemctl start tandemd || fail start "systemctl start tandemd failed"
start_ms=$((($(date +%s%N) - t0) / 1000000))
[ "$(systemctl is-active tandemd)" = active ] || fail start "not active right after start"
tandemctl status >/dev/null 2>&1 || fail start "the admin socket did not answer right after systemctl start returned (readiness too early)"
listening 18080 || fail start "no listener on :18080 right after start"
ok start "systemctl start returned after $start_ms ms, admin API and listener up; status: $(systemctl show -p StatusText --value tandemd)"

# ---- the watchdog is armed and fed: the same process after 1.5 watchdog periods
wd="$(systemctl show -p WatchdogUSec --value tandemd)"
[ "$wd" = 10s ] || fail watchdog "WatchdogUSec=$wd, not 10s"
pid="$(main_pid)"
sleep 15
[ "$(main_pid)" = "$pid" ] && [ "$(systemctl show -p NRestarts --value tandemd)" = 0 ] ||
    fail watchdog "tandemd was restarted within 15 s (pid $pid -> $(main_pid)): the watchdog is not fed"
ok watchdog "WatchdogUSec=$wd, same pid $pid after 15 s"

# ---- hardening in effect on the running process
status="/proc/$pid/status"
[ "$(stat -c %U "/proc/$pid")" = tandem ] || fail hardening "runs as $(stat -c %U "/proc/$pid"), not tandem"
# CAP_NET_BIND_SERVICE (10), CAP_NET_ADMIN (12), CAP_NET_RAW (13): 0x3400, nothing else.
for f in CapEff CapPrm CapBnd; do
    v="$(awk -v f="$f:" '$1 == f { print $2 }' "$status")"
    [ "$v" = 0000000000003400 ] || fail hardening "$f=$v, want 0000000000003400 (net_bind_service, net_admin, net_raw)"
done
grep -q '^NoNewPrivs:[[:space:]]*1$' "$status" || fail hardening "NoNewPrivs is not set"
grep -q '^Seccomp:[[:space:]]*2$' "$status" || fail hardening "no seccomp filter (SystemCallFilter)"
exposure="$(systemd-analyze security tandemd --no-pager 2>/dev/null | sed -n 's/.*Overall exposure level for tandemd.service: *//p')"
[ -n "$exposure" ] || fail hardening "systemd-analyze security printed no exposure level"
score="${exposure%% *}"
# systemd's scale: 0 (best) to 10; below 3 is "OK".
awk -v s="$score" 'BEGIN { exit !(s + 0 < 3.0) }' || fail hardening "systemd-analyze security: exposure $exposure (want below 3.0)"
ok hardening "user tandem, CapEff=CapBnd=0x3400, NoNewPrivs, seccomp; systemd-analyze security: $exposure"

# ---- reload: a good config is applied in place, a bad one fails and changes nothing
config_on_port 18081
systemctl reload tandemd || fail reload "systemctl reload failed on a good config"
listening 18081 && ! listening 18080 || fail reload "the reloaded config is not serving (:18081 up, :18080 gone)"
[ "$(main_pid)" = "$pid" ] || fail reload "reload restarted the process"
ok reload "applied in place: listener moved to :18081, same pid"
echo 'this is [ not toml' >/etc/tandem/tandem.toml
if systemctl reload tandemd 2>/dev/null; then fail bad-reload "systemctl reload succeeded on a broken config"; fi
[ "$(systemctl is-active tandemd)" = active ] && [ "$(main_pid)" = "$pid" ] ||
    fail bad-reload "tandemd did not survive a refused reload"
listening 18081 || fail bad-reload "the running config stopped serving after a refused reload"
ok bad-reload "systemctl reload failed, the running config still serves"
config_on_port 18081

# ---- stop
systemctl stop tandemd || fail stop "systemctl stop failed"
[ "$(systemctl is-active tandemd)" = inactive ] || fail stop "state $(systemctl is-active tandemd) after stop"
[ ! -e /run/tandem ] || fail stop "/run/tandem is left after stop"
! listening 18081 || fail stop "something still listens on :18081"
ok stop "inactive, /run/tandem removed"

# ---- dpkg -r: binaries and units gone; the conffiles, the user and the group stay
dpkg -r tandem >/tmp/package-check.dpkg.log 2>&1 || fail dpkg-remove "$(tail -5 /tmp/package-check.dpkg.log)"
for f in /usr/bin/tandemd /usr/bin/tandemctl /usr/bin/tandem-probe /lib/systemd/system/tandemd.service /lib/systemd/system/tandem-witness.service; do
    [ ! -e "$f" ] || fail dpkg-remove "$f is left"
done
[ -f /etc/tandem/tandem.toml ] && getent passwd tandem >/dev/null || fail dpkg-remove "the conffile or the user went with dpkg -r"
systemctl cat tandemd >/dev/null 2>&1 && fail dpkg-remove "systemd still knows tandemd.service"
ok dpkg-remove "binaries and units gone; /etc/tandem/tandem.toml and the user stay"

# ---- dpkg --purge: nothing left
dpkg --purge tandem >/tmp/package-check.dpkg.log 2>&1 || fail dpkg-purge "$(tail -5 /tmp/package-check.dpkg.log)"
left=""
while read -r f; do
    [ -f "$f" ] || [ -L "$f" ] && left+=" $f"
done </tmp/package-check.files
for f in /etc/tandem /var/lib/tandem /etc/sysctl.d/60-tandem.conf; do [ -e "$f" ] && left+=" $f"; done
[ -z "$left" ] || fail dpkg-purge "left behind:$left"
! getent passwd tandem >/dev/null && ! getent group tandem >/dev/null || fail dpkg-purge "the user or group tandem is left"
dpkg-query -W -f='${Status}' tandem 2>/dev/null | grep -q ' installed$' && fail dpkg-purge "dpkg still lists tandem"
ok dpkg-purge "no file of the package, no /etc/tandem, /var/lib/tandem, user or group left"

# ---- appliance/install.sh on the same booted machine
# The release binaries from the package (the synced folder carries no target/release).
bins="$(mktemp -d)"
dpkg-deb -x "$SRC/$deb" "$bins"
"$SRC/appliance/install.sh" --bin-dir "$bins/usr/bin" >/tmp/package-check.install.log 2>&1 ||
    fail install.sh "$(tail -5 /tmp/package-check.install.log)"
config_on_port 18082
systemctl start tandemd || fail install.sh "systemctl start failed after install.sh"
tandemctl status >/dev/null 2>&1 && listening 18082 || fail install.sh "not serving after start"
systemctl stop tandemd
"$SRC/appliance/install.sh" --uninstall --purge >>/tmp/package-check.install.log 2>&1 ||
    fail install.sh "--uninstall --purge: $(tail -5 /tmp/package-check.install.log)"
for f in /usr/bin/tandemd /lib/systemd/system/tandemd.service /etc/tandem /var/lib/tandem; do
    [ ! -e "$f" ] || fail install.sh "$f is left after --uninstall --purge"
done
! getent passwd tandem >/dev/null || fail install.sh "the user tandem is left after --uninstall --purge"
rm -rf "$bins"
ok install.sh "installed, started (ready, serving), stopped, --uninstall --purge left nothing"
echo "package checks: all passed"
