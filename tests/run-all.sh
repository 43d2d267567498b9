#!/bin/sh
# run-all.sh - every test of the project, in order: unit tests (ASan/UBSan build),
# integration tests against the real daemon (ASan/UBSan build), a short run of
# each libFuzzer target, the arm64 build under qemu-user (tests/cross), and the .deb
# under systemd in a VM (release build, as root). Prints one closing line
# "N passed, N failed" for the whole run and exits non-zero when anything failed.
# Run from the repository root after 'make asan release fuzz cross-arm64' (make test
# does all of it).
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

# The arm64 binary (make cross ARCH=arm64, build-cross-arm64/) under qemu-user: its
# unit tests and the smoke test (tests/cross/run.sh; README, "ARM binaries").
echo "== arm64 (qemu-user)"
mkdir -p build-cross-arm64
./tests/cross/run.sh arm64 >build-cross-arm64/run-all.log 2>&1
rc=$?
cat build-cross-arm64/run-all.log
count build-cross-arm64/run-all.log $rc

# The unit under systemd as PID 1: the .deb installed in a Debian 12 VM (qemu -accel
# tcg), two boots of one disk (docs/operations.md, "Testing under systemd"). Needs
# root; the first run builds build/vm/ (debootstrap). EP_SKIP_VM=1 leaves it out.
echo "== systemd VM (tests/vm)"
if [ -n "${EP_SKIP_VM:-}" ]; then
	echo "# skipped (EP_SKIP_VM is set)"
elif [ "$(id -u)" != 0 ]; then
	echo "# skipped: needs root (debootstrap, the VM's disk image)"
else
	mkdir -p build/vm
	EP_VM_BIN=$PWD/build/edgepoint ./tests/vm/run.sh >build/vm/run.log 2>&1
	rc=$?
	cat build/vm/run.log
	count build/vm/run.log $rc
	# The package the VM installed, through lintian (its overrides say why).
	if lintian --fail-on error,warning build/vm/payload/edgepoint_*.deb >build/vm/lintian.log 2>&1; then
		echo "ok - lintian on the .deb"
		passed=$((passed + 1))
	else
		echo "not ok - lintian on the .deb"
		sed 's/^/# /' build/vm/lintian.log
		failed=$((failed + 1))
	fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
