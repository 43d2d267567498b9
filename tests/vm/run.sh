#!/bin/sh
# run.sh - the edgepoint package under a real systemd: boots Debian 12 (Debian's
# kernel, systemd as PID 1) in qemu-system-x86_64 -accel tcg, installs the .deb that
# scripts/mkdeb.sh makes from the binary (apt install ./edgepoint_*.deb) and checks
# what the postinst did, that the hardened unit starts (active only after READY=1),
# runs as edgepoint without capabilities, writes its state directory, polls a Modbus
# RTU simulator over a real UART, serves one on a socat PTY, answers on the bus, logs
# with journald priorities, reloads, is restarted by its watchdog, and that its
# sandbox refuses what it should; then boots the same disk again: the service is
# back with its data, and apt purge removes what the package added but the data.
# Part of 'make test' (tests/run-all.sh). Run as root from anywhere:
#
#   tests/vm/run.sh            # build/edgepoint (make release first)
#   EP_VM_BIN=build-x/edgepoint EP_VM_WORK=build-x/vm tests/vm/run.sh
#
# The first run builds build/vm/ from Debian packages (debootstrap, the kernel; about
# 2 minutes), later runs reuse it; a run (two boots) takes about 3.5 minutes.
# docs/operations.md, "Testing under systemd".
set -eu
cd "$(dirname "$0")/../.."
./tests/vm/build.sh
exec /usr/bin/python3 tests/vm/host.py
