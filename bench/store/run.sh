#!/bin/sh
# run.sh - runs the store benchmark of the release build and checks its targets:
# the store's batched asynchronous writes reach at least 0.7 of the points/s of raw
# SQLite upserts in one transaction; with history on for every point, at least 0.5
# of the rate without; a week of 1-second data of one point into 1,000 buckets in
# at most 100 ms (bench_store.c says what is measured).
# It builds nothing; build first with
#   cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DEP_STATIC=ON && cmake --build build -j2
# Usage: bench/store/run.sh [bench_store options], e.g. -r 7 or -n 1000000.
# The databases go to a temporary directory under build/ (a disk, like the
# gateway's data_dir; /tmp may be a tmpfs), removed afterwards.
set -eu
cd "$(dirname "$0")/../.."
bin=./build/bench_store
if [ ! -x "$bin" ]; then
	echo "run.sh: $bin not found: build the release tree first (see the top of $0)" >&2
	exit 2
fi
dir=$(mktemp -d -p build bench-store.XXXXXX)
trap 'rm -rf "$dir"' EXIT INT TERM
out=$("$bin" -d "$dir" "$@")
echo "$out"
ratio=$(echo "$out" | awk '$1 == "ratio" { print $2 }')
hratio=$(echo "$out" | awk '$1 == "history_ratio" { print $2 }')
qms=$(echo "$out" | awk '$1 == "history_1000_buckets_ms" { print $2 }')
rc=0
if awk -v r="$ratio" 'BEGIN { exit !(r >= 0.7) }'; then
	echo "store bench: ok (ratio $ratio >= 0.7)"
else
	echo "store bench: FAILED (ratio $ratio < 0.7)"
	rc=1
fi
if awk -v r="$hratio" 'BEGIN { exit !(r >= 0.5) }'; then
	echo "history ingest: ok (history_ratio $hratio >= 0.5)"
else
	echo "history ingest: FAILED (history_ratio $hratio < 0.5)"
	rc=1
fi
if awk -v r="$qms" 'BEGIN { exit !(r <= 100) }'; then
	echo "history query: ok (1,000 buckets of a week of 1 s data in $qms ms <= 100)"
else
	echo "history query: FAILED ($qms ms > 100)"
	rc=1
fi
exit $rc
