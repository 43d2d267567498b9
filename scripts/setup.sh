#!/bin/sh
# setup.sh - installs every Debian package that building, testing and benchmarking
# edgepoint needs, and the deb-src lines third_party/ uses to fetch cJSON's and
# libmodbus's sources. Run as root on Debian 12. Safe to run again.
set -eu
cd "$(dirname "$0")/.."

PACKAGES="
  build-essential cmake pkg-config dpkg-dev file
  clang libclang-rt-14-dev
  libuv1-dev libsqlite3-dev sqlite3 libmbedtls-dev openssl
  libnats-dev nats-server
  golang-go golang-github-nats-io-go-nats-dev
  python3 python3-pytest python3-pymodbus python3-serial python3-serial-asyncio socat mbpoll
  nodejs npm
  systemd strace tzdata
  qemu-system-x86 debootstrap e2fsprogs lintian
"

if [ "$(id -u)" != 0 ]; then
	echo "setup.sh: run as root (it installs Debian packages)" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
missing=""
for p in $PACKAGES; do
	# nodejs/npm may come from another repository on some machines: a working
	# node and npm are enough.
	case $p in nodejs | npm) command -v "$p" >/dev/null 2>&1 && continue ;; esac
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	apt-get update -q
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing
fi

# deb-src lines, for 'apt-get source' in third_party/fetch-sources.sh.
if ! grep -rqsE '^(deb-src |Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
	if [ -f /etc/apt/sources.list.d/debian.sources ]; then
		sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
			>/etc/apt/sources.list.d/edgepoint-src.sources
	else
		sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >/etc/apt/sources.list.d/edgepoint-src.list
	fi
	apt-get update -q
fi

# JavaScript peers used only by the tests (nats.js, Modbus simulators).
if [ -f tests/js/package.json ]; then
	(cd tests/js && if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi)
fi

# The arm64 cross toolchain, arm64 -dev packages and qemu-user-static: the test
# command builds and runs the arm64 binary too (armhf: make cross ARCH=armhf installs it).
./scripts/setup-cross.sh arm64
echo "setup.sh: done"
