#!/bin/sh
# run.sh - the bus loop's latency while new TLS clients connect: one existing TLS
# client PINGs every 2 ms and times each PONG while new TLS clients (connect, INFO,
# handshake, CONNECT, PING/PONG, close) arrive at RATE per second, at most CONC at a
# time, for DUR seconds (main.go says what is measured). A handshake computed on the
# loop thread holds every other client's traffic for its cost (about 5 ms); computed
# on the handshake workers (src/bus/tls_pool.c) it does not.
#
# The daemon runs with bus.tls on an ECDSA P-256 certificate made here with the
# openssl CLI, log level warn, a temporary data_dir. Readiness is polled (the port
# accepts), never slept for.
#
# Environment: EP_BIN (default build/edgepoint, a release build), RATE (200), CONC
# (50), DUR (10), BURST (0; >0: one burst of that many concurrent new clients
# instead of RATE), P99_MAX_MS (50: exit 1 when the existing client's PING p99 under
# load exceeds it; 0 = no check).
# It builds the Go program (standard library only, offline) into $(dirname EP_BIN).
set -eu
cd "$(dirname "$0")/../.."
ep=${EP_BIN:-./build/edgepoint}
rate=${RATE:-200}
conc=${CONC:-50}
dur=${DUR:-10}
burst=${BURST:-0}
p99max=${P99_MAX_MS:-50}
bin=$(dirname "$ep")/tlsbench
if [ ! -x "$ep" ]; then
	echo "run.sh: $ep not found: build the release tree first" \
		"(cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DEP_STATIC=ON && cmake --build build -j2)" >&2
	exit 2
fi
if ! command -v go >/dev/null; then
	echo "run.sh: go not found: run scripts/setup.sh (golang-go)" >&2
	exit 2
fi
GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOPROXY=off \
	GOCACHE="$PWD/$(dirname "$ep")/gocache" go build -o "$bin" bench/tls/main.go || exit 2

dir=$(mktemp -d)
ep_pid=
cleanup() {
	set +e
	[ -n "$ep_pid" ] && kill "$ep_pid" 2>/dev/null && wait "$ep_pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

ossl() { openssl "$@" >/dev/null 2>&1 || { echo "run.sh: openssl $* failed" >&2; exit 2; }; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/ca.key" \
	-out "$dir/ca.pem" -days 2 -subj "/CN=bench CA" \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$dir/server.key" \
	-out "$dir/server.csr" -subj "/CN=127.0.0.1"
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$dir/server.ext"
ossl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
	-CAcreateserial -out "$dir/server.pem" -days 2 -extfile "$dir/server.ext"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$dir/edgepoint.json" <<JSON
{
  "device_id": "bench",
  "data_dir": "$dir/data",
  "log": {"level": "warn"},
  "bus": {"listen": ["127.0.0.1:$port"],
          "tls": {"cert_file": "$dir/server.pem", "key_file": "$dir/server.key"}}
}
JSON
"$ep" serve -c "$dir/edgepoint.json" >"$dir/edgepoint.log" 2>&1 &
ep_pid=$!
python3 - "$port" "$ep_pid" <<'PY' || { cat "$dir/edgepoint.log" >&2; exit 2; }
import os, socket, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("run.sh: edgepoint exited during start-up")
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.02)
sys.exit("run.sh: edgepoint did not open port %d" % port)
PY

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)," \
	"load average $(cut -d' ' -f1-3 /proc/loadavg); $ep"
if [ "$burst" -gt 0 ]; then
	echo "== one burst of $burst concurrent new TLS clients"
else
	echo "== $rate new TLS clients/s (at most $conc in flight) for ${dur}s"
fi
t0=$(awk '{print $14 + $15}' "/proc/$ep_pid/stat")
out=$("$bin" -addr "127.0.0.1:$port" -ca "$dir/ca.pem" -rate "$rate" -conc "$conc" \
	-dur "$dur" -burst "$burst") || exit 2
t1=$(awk '{print $14 + $15}' "/proc/$ep_pid/stat")
echo "$out"
echo "server_cpu_ticks $((t1 - t0)) (1/$(getconf CLK_TCK) s, all threads)"
p99=$(echo "$out" | awk '$1 == "load" { for (i = 2; i < NF; i++) if ($i == "ping_p99_ms") print $(i + 1) }')
if [ "$p99max" != 0 ] && awk -v a="$p99" -v b="$p99max" 'BEGIN { exit !(a > b) }'; then
	echo "FAIL: ping p99 under load $p99 ms > $p99max ms"
	exit 1
fi
echo "ok: ping p99 under load $p99 ms (bound $p99max ms)"
