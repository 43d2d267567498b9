#!/bin/sh
# run.sh - the soak bench (issue 11, section 6): DURATION seconds (default 1800, 30
# minutes) of 200 nats.go clients publishing (point writes and plain pub/sub) and
# 10,000 Modbus IOs polled from pymodbus simulators, against the release daemon;
# VmRSS and open descriptors sampled every SAMPLE seconds (10), printed as a table,
# then max and last against the bounds. soak.py says what runs and how; the bounds
# and why they are what they are: docs/benchmarks.md, "Soak".
#
# Environment: EP_BIN (default build/edgepoint, a release build: cmake -S . -B build
# -DCMAKE_BUILD_TYPE=Release -DEP_STATIC=ON && cmake --build build -j2), DURATION
# (1800), SAMPLE (10), CLIENTS (200), RATE (5 messages/s per client), SIMS (4),
# RSS_MAX_KIB (65536), FDS_MAX (400), RSS_GROWTH_KIB (4096).
# Exits 1 when a bound is exceeded or the daemon or the load failed, 2 when something
# could not run. It builds load.go (GOPATH mode against Debian's
# golang-github-nats-io-go-nats-dev, offline) into $(dirname EP_BIN)/soakload.
set -eu
cd "$(dirname "$0")/../.."
ep=${EP_BIN:-./build/edgepoint}
if [ ! -x "$ep" ]; then
	echo "run.sh: $ep not found: build the release tree first (see the top of $0)" >&2
	exit 2
fi
if ! command -v go >/dev/null; then
	echo "run.sh: go not found: run scripts/setup.sh (golang-go, golang-github-nats-io-go-nats-dev)" >&2
	exit 2
fi
load=$(dirname "$ep")/soakload
GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOPROXY=off \
	GOCACHE="$PWD/$(dirname "$ep")/gocache" go build -o "$load" bench/soak/load.go || exit 2
exec /usr/bin/python3 bench/soak/soak.py --bin "$ep" --load "$load" \
	--duration "${DURATION:-1800}" --sample "${SAMPLE:-10}" --clients "${CLIENTS:-200}" \
	--rate "${RATE:-5}" --sims "${SIMS:-4}" --rss-max-kib "${RSS_MAX_KIB:-65536}" \
	--fds-max "${FDS_MAX:-400}" --rss-growth-kib "${RSS_GROWTH_KIB:-4096}"
