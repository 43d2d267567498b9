#!/bin/sh
# build.sh - the Debian 12 system that tests/vm/run.sh boots: a debootstrap root with
# systemd as PID 1, udev, Debian's kernel (linux-image-amd64) and its initramfs,
# socat and mbpoll, as an ext4 image. Everything comes from Debian packages; the
# result is cached under build/vm/ (base.img, vmlinuz, initrd.img) and rebuilt only
# when BASE_VERSION below changes or build/vm/ is removed. Run as root.
#
# The image holds nothing of edgepoint: run.sh hands the binary, the systemd files
# and the guest script over on a second disk, so a new build needs no new image.
set -eu
cd "$(dirname "$0")/../.."
BASE_VERSION=1
VM=${EP_VM_DIR:-$PWD/build/vm}
[ "$(cat "$VM/base.version" 2>/dev/null)" = "$BASE_VERSION" ] && [ -f "$VM/base.img" ] && exit 0
[ "$(id -u)" = 0 ] || { echo "build.sh: run as root (debootstrap, chroot)" >&2; exit 1; }
for p in debootstrap qemu-system-x86 e2fsprogs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="${missing:-} $p"
done
if [ -n "${missing:-}" ]; then
	# shellcheck disable=SC2086
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
fi
mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
[ -n "$mirror" ] || mirror=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list)
R=$VM/root
mkdir -p "$VM"
unmount() { for m in dev/pts dev proc sys; do umount -l "$R/$m" 2>/dev/null || true; done; }
unmount
rm -rf "$R" "$VM/base.img" "$VM/base.version"
echo "build.sh: debootstrap bookworm from $mirror (log: $VM/debootstrap.log)"
debootstrap --variant=minbase --include=systemd,systemd-sysv,udev,kmod,procps bookworm \
	"$R" "$mirror" >"$VM/debootstrap.log" 2>&1 || { tail -20 "$VM/debootstrap.log"; exit 1; }
trap unmount EXIT
mount --bind /dev "$R/dev"; mount --bind /dev/pts "$R/dev/pts"
mount -t proc proc "$R/proc"; mount --bind /sys "$R/sys"
cp /etc/resolv.conf "$R/etc/resolv.conf"
echo "build.sh: the kernel, socat, mbpoll (log: $VM/apt.log)"
chroot "$R" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
	'apt-get update -q && apt-get install -y -q --no-install-recommends linux-image-amd64 socat mbpoll' \
	>"$VM/apt.log" 2>&1 || { tail -20 "$VM/apt.log"; exit 1; }
chroot "$R" apt-get clean
unmount
trap - EXIT

# The system: root on the virtio disk, no login on the console (the test owns it),
# and a unit that runs the guest script from the second disk once booted.
echo edgepoint-vm >"$R/etc/hostname"
printf '127.0.0.1\tlocalhost edgepoint-vm\n::1\tlocalhost\n' >"$R/etc/hosts"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$R/etc/fstab"
: >"$R/etc/machine-id"
ln -sf /dev/null "$R/etc/systemd/system/serial-getty@ttyS0.service"
ln -sf /dev/null "$R/etc/systemd/system/getty@tty1.service"
cat >"$R/etc/systemd/system/ep-vmtest.service" <<'UNIT'
[Unit]
Description=edgepoint VM test (tests/vm/guest.sh from the payload disk)
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'mkdir -p /mnt/payload && mount -o ro /dev/vdb /mnt/payload && exec /bin/sh /mnt/payload/guest.sh'
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyS0
TTYReset=no
TTYVHangup=no
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
UNIT
ln -sf ../ep-vmtest.service "$R/etc/systemd/system/multi-user.target.wants/ep-vmtest.service"
cp -L "$R/vmlinuz" "$VM/vmlinuz"
cp -L "$R/initrd.img" "$VM/initrd.img"
echo "build.sh: base.img"
rm -f "$R/etc/resolv.conf"
mkfs.ext4 -q -L edgepoint-vm -d "$R" "$VM/base.img" 2G
rm -rf "$R"
echo "$BASE_VERSION" >"$VM/base.version"
echo "build.sh: done ($VM)"
