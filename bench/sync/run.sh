#!/bin/sh
# run.sh - the sync benchmark (bench_sync.c says what is measured): a nats-server
# with JetStream on a free loopback port (its store in a temporary directory under
# build/), then
#   1. the drain of a 100,000-point outbox backlog after an outage, in-process;
#   2. 200 simulated gateway links in one process pushing into one `edgepoint
#      cloud` (the release binary, its data_dir in the same temporary directory).
# Readiness is polled (the port, the cloud's ready line), never slept for.
#
# It builds nothing; build first with
#   cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DEP_STATIC=ON && cmake --build build -j2
# Environment: EP_BIN (build/edgepoint), BENCH_SYNC (build/bench_sync), NATS_SERVER
# (/usr/sbin/nats-server), POINTS (100000), LINKS (200), PER_MSG (100), DURATION (20, seconds).
# Exits 2 when something could not run; there is no target to miss.
set -eu
cd "$(dirname "$0")/../.."
ep=${EP_BIN:-./build/edgepoint}
bench=${BENCH_SYNC:-./build/bench_sync}
nats=${NATS_SERVER:-/usr/sbin/nats-server}
for f in "$ep" "$bench" "$nats"; do
	if [ ! -x "$f" ]; then
		echo "run.sh: $f not found: build the release tree first (see the top of $0)" >&2
		exit 2
	fi
done

mkdir -p build
dir=$(cd "$(mktemp -d -p build bench-sync.XXXXXX)" && pwd)
ns_pid=
cloud_pid=
cleanup() {
	set +e
	for p in $cloud_pid $ns_pid; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# wait_for CMD...: polls CMD (a shell test) every 50 ms for 60 s.
wait_for() {
	i=0
	until "$@"; do
		i=$((i + 1))
		if [ $i -gt 1200 ]; then
			echo "run.sh: timed out waiting for: $*" >&2
			exit 2
		fi
		sleep 0.05
	done
}
port_open() {
	python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$1" 2>/dev/null
}

start_nats() {
	rm -rf "$dir/js"
	"$nats" -js -sd "$dir/js" -a 127.0.0.1 -p "$port" >"$dir/nats.log" 2>&1 &
	ns_pid=$!
	wait_for port_open "$port"
}
stop_nats() {
	kill "$ns_pid"
	wait "$ns_pid" 2>/dev/null || true
	ns_pid=
}

echo "-- drain (${POINTS:-100000} points)"
start_nats
mkdir -p "$dir/edge"
"$bench" -m drain -u "nats://127.0.0.1:$port" -d "$dir/edge" -n "${POINTS:-100000}"
stop_nats

echo "-- fleet (${LINKS:-200} links, ${PER_MSG:-100} points per message, ${DURATION:-20} s)"
start_nats
cat >"$dir/cloud.json" <<JSON
{
  "instance": "bench",
  "data_dir": "$dir/cloud",
  "log": {"level": "warn"},
  "nats": {"url": "nats://127.0.0.1:$port"},
  "streams": {"up": {"max_age": "1h"}, "down": {"max_age": "1h"}}
}
JSON
# Log at notice for the ready line, which the wait looks for.
sed -i 's/"warn"/"notice"/' "$dir/cloud.json"
"$ep" cloud -c "$dir/cloud.json" >"$dir/cloud.log" 2>&1 &
cloud_pid=$!
cloud_ready() { grep -q " ready: " "$dir/cloud.log"; }
wait_for cloud_ready
"$bench" -m fleet -u "nats://127.0.0.1:$port" -C bench-up -l "${LINKS:-200}" \
	-b "${PER_MSG:-100}" -s "${DURATION:-20}"
echo "cloud_rss_kib $(awk '/VmRSS/ { print $2 }' /proc/$cloud_pid/status)"
