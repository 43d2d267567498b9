#!/bin/sh
# run-all.sh - every test of the project, in order: unit tests (ASan/UBSan build),
# integration tests against the real daemon (ASan/UBSan build), and a short run of
# each libFuzzer target. Prints one closing line "N passed, N failed" for the whole
# run and exits non-zero when anything failed. Run from the repository root after
# 'make asan release fuzz' (make test does all of it).
set -u
cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
passed=0
failed=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

num() { # num LOGFILE WORD: the number before WORD on the runner's closing line
	grep -E '[0-9]+ (passed|failed|errors?)' "$1" | tail -n 1 | grep -oE "[0-9]+ $2" |
		grep -oE '^[0-9]+' || echo 0
}

count() { # count LOGFILE RC: add a runner's closing line to the totals
	p=$(num "$1" passed)
	f=$(( $(num "$1" failed) + $(num "$1" 'errors?') ))
	[ "$2" -ne 0 ] && [ "$f" -eq 0 ] && f=1 # the runner failed without saying so
	passed=$((passed + p))
	failed=$((failed + f))
}

echo "== unit tests (build-asan/ep_unit)"
./build-asan/ep_unit >build-asan/unit.log 2>&1
rc=$?
cat build-asan/unit.log
count build-asan/unit.log $rc

echo "== integration tests (build-asan/edgepoint)"
EP_BIN=$PWD/build-asan/edgepoint /usr/bin/python3 -m pytest -q -p no:cacheprovider \
	tests/integration >build-asan/integration.log 2>&1
rc=$?
cat build-asan/integration.log
count build-asan/integration.log $rc

echo "== fuzz targets (${FUZZ_SECONDS}s each)"
for f in build-fuzz/fuzz_*; do
	[ -x "$f" ] || continue
	name=$(basename "$f")
	corpus=build-fuzz/corpus-$name
	mkdir -p "$corpus"
	seeds=tests/fuzz/seeds/${name#fuzz_}
	[ -d "$seeds" ] || seeds=""
	if "$f" -max_total_time="$FUZZ_SECONDS" -timeout=10 "$corpus" $seeds \
		>build-fuzz/$name.log 2>&1; then
		echo "ok - $name"
		passed=$((passed + 1))
	else
		echo "not ok - $name (see build-fuzz/$name.log)"
		tail -n 30 build-fuzz/$name.log | sed 's/^/# /'
		failed=$((failed + 1))
	fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
