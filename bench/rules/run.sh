#!/bin/sh
# run.sh - the rules benchmark (bench_rules.c says what is measured): 1,000 rules on
# the release gateway, points arriving at 10,000 per second, the latency from a
# point's commit to the commit of the point its rule's action writes, condition
# evaluations per second flat out, and the memory the rules take (VmRSS after the load
# of the tree with the rules, less that of a tree with as many variable nodes with
# similar points in their place, divided by the number of rules).
# Readiness is polled (the bus port, the "rules loaded" log line), never slept for.
#
# Targets (exit 1 when one is missed): latency p99 <= 5 ms; every point acted on.
# It builds nothing: cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DEP_STATIC=ON &&
# cmake --build build -j2. Environment: EP_BIN (default build/edgepoint), BENCH_RULES
# (build/bench_rules), RULES (1000), BATCH_WINDOW (store.batch_window, default "0", the
# gateway's default). Extra arguments go to bench_rules.
set -eu
cd "$(dirname "$0")/../.."
ep=${EP_BIN:-./build/edgepoint}
bench=${BENCH_RULES:-./build/bench_rules}
rules=${RULES:-1000}
for f in "$ep" "$bench"; do
	if [ ! -x "$f" ]; then
		echo "run.sh: $f not found: build the release tree first (see the top of $0)" >&2
		exit 2
	fi
done
mkdir -p build
dir=$(mktemp -d -p build bench-rules.XXXXXX)
ep_pid=
cleanup() {
	[ -n "$ep_pid" ] && kill "$ep_pid" 2>/dev/null && wait "$ep_pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

# gen DIR PORT WITH_RULES: a config with s0..sK-1, o0..oK-1 and (1) the K rules.
gen() {
	python3 - "$1" "$2" "$rules" "$3" <<'EOF'
import json, os, sys
d, port, k, with_rules = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
nodes = [{"id": "s%d" % i, "type": "variable", "points": {"value": 0}} for i in range(k)]
nodes += [{"id": "o%d" % i, "type": "variable", "points": {"value": 0}} for i in range(k)]
if not with_rules:  # as many nodes, with points like the rules', for the same store
    for i in range(k):
        for suffix, pts in (("", {"description": "x"}), ("c", {"pointType": "value", "value": 50}),
                            ("a", {"pointType": "value", "value": 1}),
                            ("i", {"pointType": "value", "value": 0})):
            nodes.append({"id": "r%d%s" % (i, suffix), "type": "variable", "points": pts})
else:
    for i in range(k):
        nodes.append({"id": "r%d" % i, "type": "rule", "children": [
            {"id": "r%dc" % i, "type": "condition", "points": {
                "conditionType": "pointValue", "nodeId": "s%d" % i, "pointType": "value",
                "operator": ">", "value": 50}},
            {"id": "r%da" % i, "type": "action", "points": {
                "action": "setValue", "nodeId": "o%d" % i, "pointType": "value", "value": 1}},
            {"id": "r%di" % i, "type": "actionInactive", "points": {
                "action": "setValue", "nodeId": "o%d" % i, "pointType": "value", "value": 0}}]})
json.dump({"device_id": "bench", "data_dir": d + "/data", "log": {"level": "info"},
           "store": {"batch_window": os.environ.get("BATCH_WINDOW", "0")},
           "bus": {"listen": ["127.0.0.1:%d" % port]}, "nodes": nodes},
          open(d + "/edgepoint.json", "w"))
EOF
}

# start DIR: starts the gateway on DIR/edgepoint.json, waits for its rules.
start() {
	"$ep" serve -c "$1/edgepoint.json" 2>"$1/log" &
	ep_pid=$!
	python3 - "$1/log" "$ep_pid" <<'EOF'
import os, sys, time
log, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    os.kill(pid, 0)
    if " rules loaded" in open(log, errors="replace").read():
        sys.exit(0)
    time.sleep(0.01)
sys.exit("run.sh: the gateway did not load its rules")
EOF
}

rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The same tree without rules, for the memory the rules take.
mkdir -p "$dir/bare" "$dir/rules"
p=$(port)
gen "$dir/bare" "$p" 0
start "$dir/bare"
bare=$(rss "$ep_pid")
kill "$ep_pid" && wait "$ep_pid" 2>/dev/null || true
ep_pid=

p=$(port)
gen "$dir/rules" "$p" 1
start "$dir/rules"
with=$(rss "$ep_pid")
echo "rss_without_rules_kib $bare"
echo "rss_with_rules_kib $with"
awk -v a="$bare" -v b="$with" -v k="$rules" \
	'BEGIN { printf "memory_per_rule_bytes %.0f\n", (b - a) * 1024 / k }'
out=$("$bench" -s "nats://127.0.0.1:$p" -k "$rules" "$@") || { echo "$out"; echo "rules bench: FAILED (not every point acted)"; exit 1; }
echo "$out"
echo "rss_after_kib $(rss "$ep_pid")"
p99=$(echo "$out" | awk '$1 == "latency_p99_ms" { print $2 }')
if awk -v r="$p99" 'BEGIN { exit !(r <= 5) }'; then
	echo "rules bench: ok (p99 $p99 ms <= 5)"
else
	echo "rules bench: FAILED (p99 $p99 ms > 5)"
	exit 1
fi
