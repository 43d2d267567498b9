#!/bin/sh
# run.sh - runs every benchmark under bench/ (each bench/NAME/run.sh) against the
# release build, then prints the release binary's stripped size. make bench builds
# the release tree first. Exits non-zero when a benchmark misses its target.
set -u
cd "$(dirname "$0")/.."
status=0
for b in bench/*/run.sh; do
	echo "== $b"
	"$b" || status=1
done
if [ -x build/edgepoint ]; then
	tmp=$(mktemp)
	strip -o "$tmp" build/edgepoint
	echo "== release binary: $(file -b build/edgepoint | cut -d, -f1-2,4)"
	echo "stripped_size_bytes $(stat -c %s "$tmp")"
	rm -f "$tmp"
fi
exit $status
