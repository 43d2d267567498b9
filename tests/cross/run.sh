#!/bin/sh
# tests/cross/run.sh ARCH - the tests of a cross-built tree (make cross ARCH=arm64|armhf,
# in build-cross-ARCH/) under qemu-user: the unit tests (ep_unit, static, no
# sanitizer) and the smoke test tests/cross/test_smoke.py (serve, nats.c, a pymodbus
# simulator, SIGKILL and restart). qemu-ARCH-static is run explicitly, so no binfmt
# registration is needed. Prints "cross-test ARCH: PASS|FAIL" and the closing line
# "N passed, N failed"; exits non-zero when anything failed. 'make cross-test' and
# tests/run-all.sh (arm64) call it.
set -u
cd "$(dirname "$0")/../.." || exit 1
arch=${1:?usage: tests/cross/run.sh arm64|armhf}
case $arch in
arm64) qemu="qemu-aarch64-static" ;;
armhf) qemu="qemu-arm-static" ;;
*)
	echo "tests/cross/run.sh: unknown ARCH '$arch' (arm64 or armhf)" >&2
	exit 2
	;;
esac
dir=$PWD/build-cross-$arch
passed=0
failed=0

num() { # num LOGFILE WORD: the number before WORD on the runner's closing line
	grep -E '[0-9]+ (passed|failed|errors?)' "$1" | tail -n 1 | grep -oE "[0-9]+ $2" |
		grep -oE '^[0-9]+' || echo 0
}
count() { # count LOGFILE RC
	p=$(num "$1" passed)
	f=$(($(num "$1" failed) + $(num "$1" 'errors?')))
	[ "$2" -ne 0 ] && [ "$f" -eq 0 ] && f=1
	passed=$((passed + p))
	failed=$((failed + f))
}

if [ ! -x "$dir/edgepoint" ] || [ ! -x "$dir/ep_unit" ] || ! command -v $qemu >/dev/null; then
	echo "not ok - $dir/edgepoint, ep_unit or $qemu missing: run 'make cross ARCH=$arch'"
	echo "cross-test $arch: FAIL"
	echo "0 passed, 1 failed"
	exit 1
fi
# EP_BIN for the integration helpers: one executable that runs the ARM binary.
cat >"$dir/edgepoint-qemu" <<EOF
#!/bin/sh
exec $qemu "$dir/edgepoint" "\$@"
EOF
chmod +x "$dir/edgepoint-qemu"

t0=$(date +%s)
echo "== $arch unit tests ($qemu $dir/ep_unit)"
$qemu "$dir/ep_unit" >"$dir/unit.log" 2>&1
rc=$?
grep -vE '^ok ' "$dir/unit.log" # the failures and the closing line; unit.log has all
count "$dir/unit.log" $rc
t1=$(date +%s)

echo "== $arch smoke test (tests/cross, edgepoint serve under $qemu)"
EP_BIN=$dir/edgepoint-qemu EP_CROSS_DIR=$dir /usr/bin/python3 -m pytest -q -p no:cacheprovider \
	-o addopts= --rootdir=tests/cross tests/cross >"$dir/smoke.log" 2>&1
rc=$?
cat "$dir/smoke.log"
count "$dir/smoke.log" $rc
t2=$(date +%s)

result=PASS
[ "$failed" -eq 0 ] || result=FAIL
echo "cross-test $arch: $result (unit tests $((t1 - t0)) s, smoke test $((t2 - t1)) s)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
