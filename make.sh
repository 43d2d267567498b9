#!/bin/sh
# make.sh - the README's two commands on a machine that has nothing installed yet:
#
#   ./make.sh run    install what is needed, build, run the gateway on its default config
#   ./make.sh test   install what is needed, build, run every test
#
# A fresh Debian 12 (a minimal install, a container) has no make and no compiler;
# this installs make (and the packages scripts/setup.sh lists, through the Makefile)
# with apt-get, then runs make with the same arguments. Run it as root. Any other
# make target works too (./make.sh release, ./make.sh bench ...).
set -eu
cd "$(dirname "$0")"
if ! command -v make >/dev/null 2>&1; then
	if [ "$(id -u)" != 0 ]; then
		echo "make.sh: make is not installed; run this as root so it can install it" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q --no-install-recommends make
fi
exec make "$@"
