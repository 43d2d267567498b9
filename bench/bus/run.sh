#!/bin/sh
# run.sh - the bus benchmark: edgepoint's embedded NATS-protocol server against the
# real nats-server, on this machine, in the same run. Two clients measure both
# servers: first nats.go, the official Go client (gobench/main.go says what is
# measured: pub/sub 16 B and 1 KiB, fan-out to 4 subscribers, 4 publishers to 1,
# request/reply, server CPU per message and VmRSS), then edgepoint's own raw-protocol
# C client (bench_bus.c). Both servers start on free loopback ports with their
# default limits; edgepoint runs `serve -c` on a generated config with a temporary
# data_dir, its log at level warn. Readiness is polled (the port accepts), never
# slept for.
#
# Targets (exit 1 when one is missed, 2 when something could not run):
#   - nats.go: ps16, ps1k, fan4 and mp4 msgs/s: edgepoint/nats-server ratio >= 1.0;
#     request/reply p50 ratio <= 1.0
#   - C client: pubsub_16B, pubsub_1K and pub_16B msgs/s ratio >= 1.0; request/reply
#     p50 ratio <= 1.0
#   - edgepoint's VmRSS with 100 idle connections open, on the freshly started
#     daemon: < 8 MiB (8192 KiB). It is printed again after the load, for reference.
#
# It builds only the Go program (offline, GOPATH mode against Debian's
# golang-github-nats-io-go-nats-dev, into $(dirname EP_BIN)/natsgo_bench); build the
# rest first with
#   cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DEP_STATIC=ON && cmake --build build -j2
# Environment: EP_BIN (default build/edgepoint), BENCH_BUS (build/bench_bus),
# NATS_SERVER (/usr/sbin/nats-server), REPS (5), GOBENCH_ARGS (extra arguments of
# natsgo_bench, e.g. "-n 2000000 -q 20000"), GOBENCH_FIGS (the nats.go figures run
# and checked, default ps16,ps1k,fan4,mp4,req), GOBENCH=0 skips the nats.go part,
# CBENCH=0 the C client's. Extra arguments go to bench_bus, e.g.
# bench/bus/run.sh -n 2000000 -q 20000.
set -eu
cd "$(dirname "$0")/../.."
ep=${EP_BIN:-./build/edgepoint}
bench=${BENCH_BUS:-./build/bench_bus}
nats=${NATS_SERVER:-/usr/sbin/nats-server}
reps=${REPS:-5}
gobin=$(cd "$(dirname "$ep")" 2>/dev/null && pwd) || gobin=$PWD/build
gobench=$gobin/natsgo_bench
gofigs=${GOBENCH_FIGS:-ps16,ps1k,fan4,mp4,req}
for f in "$ep" "$bench" "$nats"; do
	if [ ! -x "$f" ]; then
		echo "run.sh: $f not found: build the release tree first (see the top of $0)" >&2
		exit 2
	fi
done
if [ "${GOBENCH:-1}" != 0 ]; then
	if ! command -v go >/dev/null; then
		echo "run.sh: go not found: run scripts/setup.sh (golang-go, golang-github-nats-io-go-nats-dev)" >&2
		exit 2
	fi
	# GOPATH mode against the Debian package of nats.go; nothing is downloaded.
	GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS="" GOPROXY=off GOCACHE="$gobin/gocache" \
		go build -o "$gobench" bench/bus/gobench/main.go || exit 2
fi

mkdir -p build
dir=$(mktemp -d -p build bench-bus.XXXXXX)
ns_pid=
ep_pid=
cleanup() {
	set +e # a server killed here exits non-zero; everything must still be undone
	for p in $ns_pid $ep_pid; do
		kill "$p" 2>/dev/null
	done
	for p in $ns_pid $ep_pid; do
		wait "$p" 2>/dev/null
	done
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT PID NAME: polls until PORT accepts; fails if PID exits first.
wait_port() {
	python3 - "$1" "$2" "$3" <<'EOF'
import os, socket, sys, time
port, pid, name = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("run.sh: %s exited during start-up" % name)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.02)
sys.exit("run.sh: %s did not open port %d" % (name, port))
EOF
}

ns_port=$(free_port)
ep_port=$(free_port)
while [ "$ep_port" = "$ns_port" ]; do ep_port=$(free_port); done
printf 'listen: 127.0.0.1:%s\n' "$ns_port" >"$dir/nats-server.conf"
cat >"$dir/edgepoint.json" <<EOF
{
  "device_id": "bench",
  "data_dir": "$PWD/$dir/data",
  "log": {"level": "warn"},
  "bus": {"listen": ["127.0.0.1:$ep_port"]}
}
EOF
"$nats" -c "$dir/nats-server.conf" >"$dir/nats-server.log" 2>&1 &
ns_pid=$!
"$ep" serve -c "$dir/edgepoint.json" >"$dir/edgepoint.log" 2>&1 &
ep_pid=$!
wait_port "$ns_port" "$ns_pid" nats-server || exit 2
wait_port "$ep_port" "$ep_pid" edgepoint || { cat "$dir/edgepoint.log" >&2; exit 2; }

echo "machine: $(nproc) CPUs, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)," \
	"Linux $(uname -r); $("$nats" --version)"
echo "== 100 idle connections, fresh servers (VmRSS in KiB)"
rss_ns=$("$bench" -I 100 -p "$ns_pid" "nats://127.0.0.1:$ns_port") || exit 2
rss_ep=$("$bench" -I 100 -p "$ep_pid" "nats://127.0.0.1:$ep_port") || exit 2
echo "$rss_ns" | sed 's/^/nats-server /'
echo "$rss_ep" | sed 's/^/edgepoint /'
idle_kib=$(echo "$rss_ep" | awk '$1 == "vmrss_kib_idle" { print $2 }')

goout=
if [ "${GOBENCH:-1}" != 0 ]; then
	echo "== nats.go: throughput, server CPU, latency (medians of $reps runs; ratio = edgepoint / nats-server)"
	# shellcheck disable=SC2086 # GOBENCH_ARGS is a list of words
	goout=$("$gobench" -r "$reps" -t "$gofigs" ${GOBENCH_ARGS:-} \
		"nats-server=nats://127.0.0.1:$ns_port,$ns_pid" \
		"edgepoint=nats://127.0.0.1:$ep_port,$ep_pid") || exit 2
	echo "$goout"
fi
out=
if [ "${CBENCH:-1}" != 0 ]; then
	echo "== C client: throughput and latency (medians of $reps runs; ratio = edgepoint / nats-server)"
	out=$("$bench" -r "$reps" "$@" "nats-server=nats://127.0.0.1:$ns_port" \
		"edgepoint=nats://127.0.0.1:$ep_port") || exit 2
	echo "$out"
fi
for p in $ns_pid $ep_pid; do
	kill -0 "$p" 2>/dev/null || { echo "run.sh: a server died during the run" >&2; exit 2; }
done

echo "== 100 idle connections after the load (edgepoint, VmRSS in KiB)"
"$bench" -I 100 -p "$ep_pid" "nats://127.0.0.1:$ep_port" | sed 's/^/edgepoint /' || exit 2

status=0
ratio() { echo "$out" | awk -v f="$1" '$1 == f && $2 == "ratio" { print $3 }'; }
goratio() { echo "$goout" | awk -v f="$1" '$1 == f && $2 == "ratio" { print $3 }'; }
check() { # check NAME VALUE OP LIMIT
	if awk -v v="$2" -v l="$4" -v op="$3" 'BEGIN {
		ok = op == ">=" ? v + 0 >= l : op == "<=" ? v + 0 <= l : v + 0 < l
		exit !(v != "" && ok) }'; then
		echo "bus bench: ok   $1 $2 $3 $4"
	else
		echo "bus bench: MISS $1 $2 (target $3 $4)"
		status=1
	fi
}
if [ "${GOBENCH:-1}" != 0 ]; then
	for f in ps16 ps1k fan4 mp4; do
		case ",$gofigs," in *",$f,"*)
			check "nats.go $f ratio" "$(goratio ${f}_msgs_per_s)" ">=" 1.0 ;;
		esac
	done
	case ",$gofigs," in *,req,*)
		check "nats.go req_p50 ratio" "$(goratio req_p50_us)" "<=" 1.0 ;;
	esac
fi
if [ "${CBENCH:-1}" != 0 ]; then
	check "pubsub_16B ratio" "$(ratio pubsub_16B_msgs_per_s)" ">=" 1.0
	check "pubsub_1K ratio" "$(ratio pubsub_1K_msgs_per_s)" ">=" 1.0
	check "pub_16B ratio" "$(ratio pub_16B_msgs_per_s)" ">=" 1.0
	check "req_p50 ratio" "$(ratio req_p50_us)" "<=" 1.0
fi
check "vmrss_kib_idle (100 connections)" "$idle_kib" "<" 8192
exit $status
