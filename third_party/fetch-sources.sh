#!/bin/sh
# fetch-sources.sh DEST - unpack Debian's sources of cJSON and libmodbus into DEST.
#
# The project commits no third-party code. CMake runs this at configure time: it asks
# apt for the source packages of the versions Debian ships (with Debian's patches
# applied) and leaves them in DEST/cjson and DEST/libmodbus, where
# third_party/CMakeLists.txt builds them as static libraries. When the machine has no
# deb-src lines and we are root, they are added first (a copy of the deb lines).
set -eu
dest=${1:?usage: fetch-sources.sh DEST}
mkdir -p "$dest"
cd "$dest"

have_src() {
	grep -rqsE '^(deb-src |Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/
}

add_deb_src() {
	if [ "$(id -u)" != 0 ]; then
		echo "fetch-sources: no deb-src lines in /etc/apt; run scripts/setup.sh as root" >&2
		exit 1
	fi
	f=/etc/apt/sources.list.d/debian.sources
	if [ -f "$f" ]; then
		sed 's/^Types: deb$/Types: deb-src/' "$f" >/etc/apt/sources.list.d/edgepoint-src.sources
	elif [ -f /etc/apt/sources.list ]; then
		sed -n 's/^deb /deb-src /p' /etc/apt/sources.list >/etc/apt/sources.list.d/edgepoint-src.list
	fi
	apt-get update -q >/dev/null
}

fetch() { # fetch PACKAGE DIRNAME
	[ -d "$2" ] && return 0
	have_src || add_deb_src
	command -v dpkg-source >/dev/null || {
		echo "fetch-sources: dpkg-source missing; run scripts/setup.sh (dpkg-dev)" >&2
		exit 1
	}
	rm -rf "tmp-$1" && mkdir "tmp-$1"
	(cd "tmp-$1" && apt-get source -q "$1" >../"fetch-$1.log" 2>&1) || {
		echo "fetch-sources: 'apt-get source $1' failed, see $dest/fetch-$1.log" >&2
		exit 1
	}
	src=$(find "tmp-$1" -mindepth 1 -maxdepth 1 -type d | head -n 1)
	ver=$(basename "$src" | sed 's/^[^-]*-//')
	mv "$src" "$2"
	echo "$ver" >"$2/.edgepoint-version"
	rm -rf "tmp-$1"
}

fetch cjson cjson
fetch libmodbus libmodbus
