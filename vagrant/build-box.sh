#!/usr/bin/env bash
# Builds the drill VMs' Vagrant box offline (no Vagrant Cloud) and adds it to Vagrant as
# `tandem/bookworm` for the libvirt provider: Debian 12 from Debian's archive with
# debootstrap (minbase plus systemd, openssh-server, sudo, the cloud kernel, grub, rsync,
# curl, nftables, python3), the vagrant user with Vagrant's insecure public key (it ships
# inside Debian's vagrant package), systemd-networkd on DHCP for the management network.
# Idempotent: nothing happens when the box is there already (--force builds it again).
# Run as root on a host prepared by vagrant/host-prep.sh. About 2 minutes here.
#
# Usage: vagrant/build-box.sh [--force] [--keep-scratch]
#   MIRROR      the Debian archive (default: the host's, else http://deb.debian.org/debian)
#   BOX_SCRATCH where the image is made (default /var/tmp/tandem-box; removed at the end)
set -euo pipefail
ME=vagrant/build-box.sh
BOX_NAME=tandem/bookworm
SCRATCH="${BOX_SCRATCH:-/var/tmp/tandem-box}"
SIZE_GB=4
FORCE=0
KEEP=0
for a in "$@"; do
    case "$a" in
    --force) FORCE=1 ;;
    --keep-scratch) KEEP=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "$ME: unknown argument '$a' (--help)" >&2
        exit 2
        ;;
    esac
done
say() { echo "$ME: $*"; }
die() {
    echo "$ME: error: $*" >&2
    exit 1
}
[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, loop devices)"
for c in debootstrap sfdisk losetup mkfs.ext4 qemu-img vagrant; do
    command -v "$c" >/dev/null || die "$c is missing: run vagrant/host-prep.sh first"
done

if [ "$FORCE" = 0 ] && vagrant box list 2>/dev/null | grep -q "^$BOX_NAME .*libvirt"; then
    say "box $BOX_NAME is there already (--force builds it again)"
    exit 0
fi

# The box's packages come from the Debian archive the host's apt already uses (a package
# download, as apt-get does, not test traffic; the VMs themselves reach nothing outside
# this machine). MIRROR overrides it, e.g. with a local mirror.
MIRROR="${MIRROR:-$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
KEY="$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | head -1)"
[ -n "$KEY" ] || die "Vagrant's insecure public key is missing (Debian's vagrant package ships it)"

loop=""
root="$SCRATCH/root"
cleanup() {
    set +e
    if mountpoint -q "$root"; then
        for m in dev/pts dev proc sys; do umount "$root/$m" 2>/dev/null; done
        umount "$root"
    fi
    if [ -n "$loop" ]; then
        partx --delete "$loop" 2>/dev/null
        losetup -d "$loop" 2>/dev/null
    fi
    [ "$KEEP" = 1 ] || rm -rf "$SCRATCH"
}
trap cleanup EXIT
rm -rf "$SCRATCH"
mkdir -p "$root"
img="$SCRATCH/disk.raw"

# One MBR partition over the disk (grub's core image goes in the gap before it).
truncate -s "${SIZE_GB}G" "$img"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$img"
loop="$(losetup --find --show --partscan "$img")"
part="${loop}p1"
# Some kernels (containers) leave the partition table unread: partx adds it then.
for _ in $(seq 20); do [ -b "$part" ] && break; sleep 0.1; done
[ -b "$part" ] || partx --add "$loop" 2>/dev/null || true
for _ in $(seq 50); do [ -b "$part" ] && break; sleep 0.1; done
[ -b "$part" ] || die "no partition device $part (loop devices without partition scanning?)"
mkfs.ext4 -q -L root "$part"
mount "$part" "$root"

say "debootstrap bookworm from $MIRROR"
start=$SECONDS
debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,udev,openssh-server,sudo,linux-image-cloud-amd64,grub-pc-bin,grub2-common,rsync,curl,nftables,python3,iproute2,procps,kmod,ca-certificates,less \
    bookworm "$root" "$MIRROR" >"$SCRATCH/debootstrap.log" 2>&1 ||
    die "debootstrap failed: $(tail -5 "$SCRATCH/debootstrap.log")"
say "debootstrap: $((SECONDS - start)) s"

for m in dev dev/pts proc sys; do mount --bind "/$m" "$root/$m"; done
uuid="$(blkid -s UUID -o value "$part")"
echo "UUID=$uuid / ext4 errors=remount-ro 0 1" >"$root/etc/fstab"
echo tandem-box >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 tandem-box\n' >"$root/etc/hosts"
# Empty: each VM makes its own on first boot (DHCP client ids derive from it).
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# The management network (the first NIC) on DHCP; Vagrant writes the private ones
# (50-vagrant-*.network, which sort first).
cat >"$root/etc/systemd/network/99-dhcp.network" <<'EOF'
[Match]
Name=eth0

[Network]
DHCP=ipv4
EOF
cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
EOF
chroot "$root" /bin/sh -euc '
    systemctl enable systemd-networkd ssh >/dev/null 2>&1
    # Nothing in the drills waits on "online": do not hold boot for it.
    systemctl mask systemd-networkd-wait-online.service >/dev/null 2>&1
    useradd --create-home --shell /bin/bash --user-group vagrant
    echo "vagrant:vagrant" | chpasswd
    echo "vagrant ALL=(ALL) NOPASSWD: ALL" >/etc/sudoers.d/vagrant
    chmod 0440 /etc/sudoers.d/vagrant
    install -d -m 0700 -o vagrant -g vagrant /home/vagrant/.ssh
    echo "UseDNS no" >/etc/ssh/sshd_config.d/vagrant.conf
'
install -m 0600 -o 1000 -g 1000 "$KEY" "$root/home/vagrant/.ssh/authorized_keys"
chroot "$root" chown vagrant:vagrant /home/vagrant/.ssh/authorized_keys

# grub on the disk, with a hand-written grub.cfg (grub-mkconfig's probing needs more of a
# running system than a chroot has): the serial console, classic NIC names (eth0 is the
# management network, as Vagrant's Debian guest code expects).
kernel="$(cd "$root/boot" && ls vmlinuz-* | sort -V | tail -1)"
initrd="initrd.img-${kernel#vmlinuz-}"
[ -f "$root/boot/$initrd" ] || die "no $initrd in the image"
chroot "$root" grub-install --target=i386-pc --modules="part_msdos ext2" "$loop" >"$SCRATCH/grub.log" 2>&1 ||
    die "grub-install failed: $(cat "$SCRATCH/grub.log")"
cat >"$root/boot/grub/grub.cfg" <<EOF
set timeout=0
insmod part_msdos
insmod ext2
search --no-floppy --fs-uuid --set=root $uuid
linux /boot/$kernel root=UUID=$uuid ro console=ttyS0 net.ifnames=0 biosdevname=0 quiet
initrd /boot/$initrd
boot
EOF
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
for m in dev/pts dev proc sys; do umount "$root/$m"; done
# Every write on the disk before it is converted (one early build lost its last writes and
# stopped at a grub prompt): sync, unmount, flush, detach, then check the file system.
# Discarding the freed blocks (apt's downloads) punches holes in the image: a smaller box.
fstrim "$root" 2>/dev/null || true
sync
umount "$root"
blockdev --flushbufs "$part" "$loop"
e2fsck -fn "$part" >"$SCRATCH/fsck.log" 2>&1 || die "the image's file system is damaged: $(tail -5 "$SCRATCH/fsck.log")"
for f in "/boot/grub/grub.cfg" "/boot/$kernel" "/boot/$initrd" "/home/vagrant/.ssh/authorized_keys" "/boot/grub/i386-pc/normal.mod"; do
    debugfs -R "stat $f" "$part" 2>/dev/null | grep -q "^Inode:" || die "the image lacks $f"
done
debugfs -R "cat /boot/grub/grub.cfg" "$part" 2>/dev/null | grep -q "^boot$" || die "the image's grub.cfg is truncated"
partx --delete "$loop" 2>/dev/null || true
losetup -d "$loop"
loop=""

say "packaging the box"
qemu-img convert -O qcow2 "$img" "$SCRATCH/box.img"
rm -f "$img"
cat >"$SCRATCH/metadata.json" <<EOF
{"provider": "libvirt", "format": "qcow2", "virtual_size": $SIZE_GB}
EOF
cat >"$SCRATCH/Vagrantfile" <<'EOF'
# The provider settings (driver, CPU model) are the project Vagrantfile's.
Vagrant.configure("2") do |config|
end
EOF
tar -C "$SCRATCH" -cf "$SCRATCH/tandem-bookworm.box" metadata.json Vagrantfile box.img
rm -f "$SCRATCH/box.img"
vagrant box add --force --name "$BOX_NAME" --provider libvirt "$SCRATCH/tandem-bookworm.box" >/dev/null
say "box $BOX_NAME added ($(du -h "$SCRATCH/tandem-bookworm.box" | cut -f1)) in $SECONDS s"
