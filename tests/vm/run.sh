#!/bin/sh
# run.sh - systemd/edgepoint.service under a real systemd: boots Debian 12 (Debian's
# kernel, systemd as PID 1) in qemu-system-x86_64 -accel tcg, installs edgepoint there
# as docs/security.md says and checks that the hardened unit starts (active only after
# READY=1), runs as edgepoint without capabilities, writes its state directory, polls
# a Modbus RTU simulator over a real UART, serves one on a socat PTY, answers on the
# bus, reloads, is restarted by its watchdog, and that its sandbox refuses what it
# should. Opt-in, not part of 'make test'. Run as root from anywhere:
#
#   tests/vm/run.sh            # build/edgepoint (make release first)
#   EP_VM_BIN=build-x/edgepoint tests/vm/run.sh
#
# The first run builds build/vm/ from Debian packages (debootstrap, the kernel; about
# 2 minutes), later runs reuse it; a run boots and tests in about 3 minutes.
set -eu
cd "$(dirname "$0")/../.."
./tests/vm/build.sh
exec /usr/bin/python3 tests/vm/host.py
