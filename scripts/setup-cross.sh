#!/bin/sh
# setup-cross.sh ARCH - installs what cross-building and testing edgepoint for ARCH
# (arm64 or armhf) needs on a Debian 12 amd64 machine: Debian's cross toolchain
# (crossbuild-essential-ARCH), the ARCH multiarch -dev packages whose static archives
# the binary links (libuv, SQLite, mbed TLS; they co-install with the amd64 ones) and
# qemu-user-static to run the results. Called by 'make cross ARCH=...'; scripts/setup.sh
# calls it for arm64, which the test command runs. Run as root. Safe to run again: it
# does nothing when everything is there.
set -eu
arch=${1:?usage: setup-cross.sh arm64|armhf}
case $arch in
arm64) triplet=aarch64-linux-gnu qemu=qemu-aarch64-static ;;
armhf) triplet=arm-linux-gnueabihf qemu=qemu-arm-static ;;
*)
	echo "setup-cross.sh: unknown ARCH '$arch' (arm64 or armhf)" >&2
	exit 2
	;;
esac

PACKAGES="crossbuild-essential-$arch qemu-user-static
  libuv1-dev:$arch libsqlite3-dev:$arch libmbedtls-dev:$arch"

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"
}
missing=""
for p in $PACKAGES; do
	installed "$p" || missing="$missing $p"
done
if [ -z "$missing" ] && command -v "$triplet-gcc" >/dev/null && command -v "$qemu" >/dev/null; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "setup-cross.sh: missing:$missing; run as root (it installs Debian packages)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Other apt users (another setup run) may hold the lock: wait for it instead of failing.
APT="apt-get -q -o DPkg::Lock::Timeout=600"
if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
	dpkg --add-architecture "$arch"
fi
$APT update
# shellcheck disable=SC2086
$APT install -y --no-install-recommends $missing
echo "setup-cross.sh: $arch done"
