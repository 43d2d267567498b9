#!/bin/sh
# run.sh - the data-plane benchmark: points per second a NATS client gets into a
# running gateway through p.<node> and persisted, with and without acknowledgement
# (bench_dataplane.c says what is measured), against the store-only figure of
# bench/store (store_write_points() on the same machine, no bus) in the same run.
# The gateway is build/edgepoint `serve -c` on a generated config with nodes
# bench0..bench9 and a data_dir under build/ (a disk, like a gateway's); readiness is
# polled (the ready line), never slept for.
#
# The client also follows the change feed (chg.>, bench_dataplane -f), as a UI would,
# and the gateway's own modules (Modbus, sync) follow it in-process.
# Target (exit 1 when missed): acked_points_per_s >= 200000, and the feed brings every
# point of both runs.
# It builds nothing: cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DEP_STATIC=ON &&
# cmake --build build -j2. Extra arguments go to bench_dataplane (e.g. -n 500000).
set -eu
cd "$(dirname "$0")/../.."
ep=${EP_BIN:-./build/edgepoint}
bench=./build/bench_dataplane
store=./build/bench_store
for f in "$ep" "$bench" "$store"; do
	if [ ! -x "$f" ]; then
		echo "run.sh: $f not found: build the release tree first (see the top of $0)" >&2
		exit 2
	fi
done
mkdir -p build
dir=$(mktemp -d -p build bench-dataplane.XXXXXX)
ep_pid=
cleanup() {
	[ -n "$ep_pid" ] && kill "$ep_pid" 2>/dev/null && wait "$ep_pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 - "$dir" "$port" <<'EOF'
import json, sys
d, port = sys.argv[1], int(sys.argv[2])
nodes = [{"id": "bench%d" % i, "type": "variable"} for i in range(10)]
json.dump({"device_id": "bench", "data_dir": d + "/data", "log": {"level": "warn"},
           "bus": {"listen": ["127.0.0.1:%d" % port]}, "nodes": nodes},
          open(d + "/edgepoint.json", "w"))
EOF
"$ep" serve -c "$dir/edgepoint.json" 2>"$dir/log" &
ep_pid=$!
# Ready when the bus port accepts (the log is at level warn, so no ready line).
python3 - "$port" "$ep_pid" <<'EOF'
import os, socket, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    os.kill(pid, 0)
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.01)
sys.exit("run.sh: the gateway did not open its port")
EOF

out=$("$bench" -s "nats://127.0.0.1:$port" -d bench -f "$@")
echo "$out"
sdir="$dir/store"
mkdir -p "$sdir"
sout=$("$store" -d "$sdir" -r 3 2>/dev/null)
echo "$sout" | grep store_batched_points_per_s
acked=$(echo "$out" | awk '$1 == "acked_points_per_s" { print $2 }')
unacked=$(echo "$out" | awk '$1 == "unacked_points_per_s" { print $2 }')
st=$(echo "$sout" | awk '$1 == "store_batched_points_per_s" { print $2 }')
awk -v a="$acked" -v u="$unacked" -v s="$st" 'BEGIN {
	printf "ratio_acked_to_store %.2f\nratio_unacked_to_store %.2f\n", a / s, u / s }'
points=$(echo "$out" | awk '$1 == "points" { print $2 }')
feed=$(echo "$out" | awk '$1 == "feed_points" { print $2 }')
if [ "$feed" != "$((2 * points))" ]; then
	echo "dataplane bench: FAILED (the feed brought $feed points, not $((2 * points)))"
	exit 1
fi
if awk -v a="$acked" 'BEGIN { exit !(a >= 200000) }'; then
	echo "dataplane bench: ok (acked $acked points/s >= 200000, feed attached)"
else
	echo "dataplane bench: FAILED (acked $acked points/s < 200000)"
	exit 1
fi
