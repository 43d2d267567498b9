#!/bin/sh
# run.sh - the Modbus benchmark of the release build (bench_modbus.c says what is
# measured): 1,000 IOs on one TCP device, the module's poll path against a plain
# libmodbus loop over the same ranges. Three runs:
#   1. a libmodbus device in a child process, values steady: the target run, which
#      fails unless module/plain >= 0.9;
#   2. the same device changing every value every cycle (every IO publishes);
#   3. the pymodbus simulator (tests/modbus/sim_pymodbus.py) as the device.
# It builds nothing; build first with
#   cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DEP_STATIC=ON && cmake --build build -j2
# Usage: bench/modbus/run.sh [bench_modbus options], e.g. -r 7 or -n 2000.
set -eu
cd "$(dirname "$0")/../.."
bin=${BENCH_MODBUS:-./build/bench_modbus}
if [ ! -x "$bin" ]; then
	echo "run.sh: $bin not found: build the release tree first (see the top of $0)" >&2
	exit 2
fi
out=$("$bin" "$@")
echo "$out"
ratio=$(echo "$out" | awk '$1 == "ratio" { print $2 }')
echo "== values changing every cycle"
"$bin" -c "$@"
if /usr/bin/python3 -c 'import pymodbus.server.async_io' 2>/dev/null; then
	echo "== pymodbus simulator as the device"
	port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	dir=$(mktemp -d)
	mkfifo "$dir/in"
	/usr/bin/python3 tests/modbus/sim_pymodbus.py --tcp "$port" <"$dir/in" >"$dir/out" 2>/dev/null &
	sim=$!
	exec 3>"$dir/in" # keeps the simulator's stdin open; closing it ends the simulator
	trap 'exec 3>&-; kill $sim 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
	until grep -q ready "$dir/out" 2>/dev/null; do
		kill -0 $sim 2>/dev/null || { echo "run.sh: the simulator did not start" >&2; exit 1; }
		sleep 0.1
	done
	"$bin" -p "$port" -t 2 -r 3
fi
if awk -v r="$ratio" 'BEGIN { exit !(r >= 0.9) }'; then
	echo "modbus bench: ok (ratio $ratio >= 0.9)"
else
	echo "modbus bench: FAILED (ratio $ratio < 0.9)"
	exit 1
fi
