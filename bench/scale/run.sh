#!/bin/sh
# run.sh - the scale benchmark (issue 11, section 6): RSS and the loop's longest
# stall during reloads with a 50,000-node file, and 10,000 Modbus IOs with 100 bus
# clients in at most 16 MiB. See measure.py for what is measured and how.
#   bench/scale/run.sh [--bin PATH] [--only nodes|modbus] [--nodes N] ...
# Exits 1 when a target is missed.
set -eu
cd "$(dirname "$0")/../.."
exec /usr/bin/python3 bench/scale/measure.py "$@"
