#!/bin/sh
# mkdeb.sh - builds dist/edgepoint_<version>_<arch>.deb with dpkg-deb from the static
# binary, systemd/ and packaging/deb/ (what goes where: docs/operations.md,
# "Installing from the package"). Nothing is fetched; no root needed.
#
#   scripts/mkdeb.sh [ARCH]          # ARCH: amd64 (default: this machine's), arm64, armhf
#
# The binary is build/edgepoint for this machine's architecture and
# build-cross-ARCH/edgepoint for another (make cross ARCH=...); $EP_DEB_BIN names
# another one. It must be a static ELF of ARCH; it is stripped into the package.
# The version is EP_VERSION (include/edgepoint/core.h); a build from a commit that is
# not tagged v<EP_VERSION> gets +git<commits>.<hash> after it, so later commits sort
# later for apt. $EP_DEB_VERSION replaces all of it. $EP_DEB_OUT replaces dist/.
set -eu
cd "$(dirname "$0")/.."
ROOT=$PWD
HOST_ARCH=$(dpkg --print-architecture)
ARCH=${1:-$HOST_ARCH}
OUT=${EP_DEB_OUT:-$ROOT/dist}
die() { echo "mkdeb.sh: $*" >&2; exit 1; }

case $ARCH in
amd64) triplet=x86_64-linux-gnu machine=x86-64 qemu=qemu-x86_64-static ;;
arm64) triplet=aarch64-linux-gnu machine="ARM aarch64" qemu=qemu-aarch64-static ;;
armhf) triplet=arm-linux-gnueabihf machine="ARM, EABI5" qemu=qemu-arm-static ;;
*) die "unknown ARCH '$ARCH': amd64, arm64 or armhf" ;;
esac
if [ "$ARCH" = "$HOST_ARCH" ]; then bin=build/edgepoint; else bin=build-cross-$ARCH/edgepoint; fi
BIN=${EP_DEB_BIN:-$bin}
[ -f "$BIN" ] || die "$BIN is missing: build it first (make release, or make cross ARCH=$ARCH)"
info=$(file -b "$BIN")
case $info in *"ELF"*"$machine"*) ;; *) die "$BIN is not an $ARCH binary: $info" ;; esac
case $info in *"statically linked"*) ;; *) die "$BIN is not statically linked: $info" ;; esac
STRIP=$triplet-strip
command -v "$STRIP" >/dev/null || { [ "$ARCH" = "$HOST_ARCH" ] && STRIP=strip; } ||
	die "$triplet-strip is missing (apt-get install binutils-$triplet)"

ver=$(sed -n 's/^#define EP_VERSION "\(.*\)"$/\1/p' include/edgepoint/core.h)
[ -n "$ver" ] || die "no EP_VERSION in include/edgepoint/core.h"
if [ -n "${EP_DEB_VERSION:-}" ]; then
	ver=$EP_DEB_VERSION
elif git rev-parse -q --verify HEAD >/dev/null 2>&1 &&
	[ "$(git describe --tags --exact-match 2>/dev/null)" != "v$ver" ]; then
	ver=$ver+git$(git rev-list --count HEAD).$(git rev-parse --short=7 HEAD)
fi
# The changelog's date and every file's time: the commit's, so that two builds of
# one commit give the same package.
: "${SOURCE_DATE_EPOCH:=$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
export SOURCE_DATE_EPOCH

P=packaging/deb
S=$(mktemp -d "${TMPDIR:-/tmp}/mkdeb.XXXXXX")
trap 'rm -rf "$S"' EXIT
umask 022
install -d "$S/DEBIAN" "$S/usr/bin" "$S/lib/systemd/system" "$S/lib/udev/rules.d" \
	"$S/usr/lib/sysusers.d" "$S/etc/edgepoint" "$S/usr/share/doc/edgepoint/examples" \
	"$S/usr/share/lintian/overrides" "$S/usr/share/man/man1"

# The binary, stripped as Debian strips executables.
"$STRIP" --strip-all --remove-section=.comment --remove-section=.note \
	-o "$S/usr/bin/edgepoint" "$BIN"
chmod 755 "$S/usr/bin/edgepoint"

# The unit with the package's paths; its install notes are for a hand install.
sed -e 's|/usr/local/bin/edgepoint|/usr/bin/edgepoint|g' \
	-e 's|/usr/local/share/doc/edgepoint|/usr/share/doc/edgepoint|g' \
	-e '/^# Install (docs\/security.md/,/^# A package installing to/c\
# Installed by the edgepoint package (packaging/deb/). Local changes go in a\
# drop-in: systemctl edit edgepoint (docs/operations.md).' \
	systemd/edgepoint.service >"$S/lib/systemd/system/edgepoint.service"
! grep -n /usr/local "$S/lib/systemd/system/edgepoint.service" ||
	die "systemd/edgepoint.service: paths under /usr/local left in the packaged unit"
grep -q '^ExecStart=/usr/bin/edgepoint serve' "$S/lib/systemd/system/edgepoint.service" ||
	die "systemd/edgepoint.service: no ExecStart=/usr/bin/edgepoint serve after the edit"
install -m 644 systemd/edgepoint.sysusers "$S/usr/lib/sysusers.d/edgepoint.conf"
sed 's|^# Install as /etc/udev/rules.d/60-edgepoint-gpio.rules, then|# Installed by the edgepoint package, whose postinst runs|' \
	systemd/60-edgepoint-gpio.rules >"$S/lib/udev/rules.d/60-edgepoint-gpio.rules"

# The configuration: root:edgepoint 0640 (and /etc/edgepoint 0750) come from
# postinst's statoverrides, which dpkg also applies when an upgrade unpacks it.
# The packaged binary checks it: natively, or under qemu-user for another ARCH.
run=
[ "$ARCH" = "$HOST_ARCH" ] || run=$qemu
if [ -z "$run" ] || command -v "$run" >/dev/null; then
	$run "$S/usr/bin/edgepoint" check-config $P/edgepoint.json >"$S/check.log" 2>&1 ||
		die "$P/edgepoint.json: $(cat "$S/check.log")"
	rm "$S/check.log"
else
	echo "mkdeb.sh: $qemu is missing: $P/edgepoint.json not checked by the $ARCH binary" >&2
fi
install -m 644 $P/edgepoint.json "$S/etc/edgepoint/edgepoint.json"

# Documentation, the examples every key is explained with, the opt-in drop-in.
D=$S/usr/share/doc/edgepoint
install -m 644 $P/copyright "$D/copyright"
for f in README.md docs/*.md; do install -m 644 "$f" "$D/"; done
install -m 644 config/edgepoint.example.json config/cloud.example.json \
	systemd/edgepoint-bind-low-port.conf "$D/examples/"
date=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
maint=$(sed -n 's/^Maintainer: //p' $P/control.in)
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
printf 'edgepoint (%s) unstable; urgency=medium\n\n  * Built from commit %s with scripts/mkdeb.sh.\n\n -- %s  %s\n' \
	"$ver" "$commit" "$maint" "$date" | gzip -9n >"$D/changelog.gz"
gzip -9n <$P/edgepoint.1 >"$S/usr/share/man/man1/edgepoint.1.gz"
install -m 644 $P/lintian-overrides "$S/usr/share/lintian/overrides/edgepoint"

# Control: the maintainer scripts, the conffile, the fields.
install -m 755 $P/postinst $P/prerm $P/postrm "$S/DEBIAN/"
(cd "$S" && find etc -type f | sed 's|^|/|') >"$S/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$S" | cut -f1)
sed -e "s/@VERSION@/$ver/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$size/" $P/control.in >"$S/DEBIAN/control"
(cd "$S" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) \
	>"$S/DEBIAN/md5sums"
chmod 644 "$S/DEBIAN/control" "$S/DEBIAN/conffiles" "$S/DEBIAN/md5sums"
find "$S" -newermt "@$SOURCE_DATE_EPOCH" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

mkdir -p "$OUT"
deb=$OUT/edgepoint_${ver}_$ARCH.deb
dpkg-deb --root-owner-group -Zxz --build "$S" "$deb" >/dev/null
echo "mkdeb.sh: $deb ($(du -k "$deb" | cut -f1) KiB, from $BIN)"
