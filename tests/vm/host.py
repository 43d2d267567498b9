#!/usr/bin/python3
"""host.py - the host side of tests/vm/run.sh: makes the payload disk (the static
binary, systemd/*, the guest scripts, a configuration), boots the image that
build.sh made with qemu-system-x86_64 -accel tcg (systemd as PID 1), runs a Modbus
RTU simulator (tests/modbus/sim_pymodbus.py) on the VM's second serial port, and
prints what guest.sh reports on the console. Exit status 0 when every guest check
passed.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from mbsim import Sim  # noqa: E402

VM = os.environ.get("EP_VM_DIR", os.path.join(ROOT, "build", "vm"))
BIN = os.environ.get("EP_VM_BIN", os.path.join(ROOT, "build", "edgepoint"))
TIMEOUT = float(os.environ.get("EP_VM_TIMEOUT", "900"))

CONFIG = {
    "device_id": "vm-gw",
    "data_dir": "/var/lib/edgepoint",
    "log": {"level": "info"},
    "bus": {"listen": ["127.0.0.1:4222"]},
    "nodes": [
        # A real UART (the 8250 driver, /dev/ttyS1) to the host's simulator.
        {"id": "uart", "type": "modbus",
         "points": {"protocol": "rtu", "port": "/dev/ttyS1", "baud": 19200, "parity": "none",
                    "pollPeriod": 200, "timeout": 500},
         "children": [{"id": "u0", "type": "modbusIo",
                       "points": {"table": "holdingRegister", "address": 0}}]},
        # A USB serial adapter (QEMU's FTDI, the ftdi_sio driver, /dev/ttyUSB0).
        {"id": "usb", "type": "modbus",
         "points": {"protocol": "rtu", "port": "/dev/ttyUSB0", "baud": 19200, "parity": "none",
                    "pollPeriod": 200, "timeout": 500},
         "children": [{"id": "s0", "type": "modbusIo",
                       "points": {"table": "holdingRegister", "address": 0}}]},
        # A socat PTY in the guest, served to mbpoll.
        {"id": "pty", "type": "modbus",
         "points": {"clientServer": "server", "protocol": "rtu", "port": "/run/ep-pty/a",
                    "baud": 19200, "parity": "even"},
         "children": [{"id": "p0", "type": "modbusIo",
                       "points": {"table": "holdingRegister", "address": 0}}]},
        # Port 502: refused without the drop-in, served with it.
        {"id": "low", "type": "modbus",
         "points": {"clientServer": "server", "protocol": "tcp", "uri": "127.0.0.1:502"},
         "children": [{"id": "l0", "type": "modbusIo",
                       "points": {"table": "holdingRegister", "address": 0}}]},
        # A cloud link to a name with two addresses (nothing listens there).
        {"id": "cloud", "type": "sync", "points": {"uri": "nats://multi.test:4223"}},
        {"id": "v1", "type": "variable"},
    ],
}


def payload():
    d = os.path.join(VM, "payload")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    if not os.path.exists(BIN):
        sys.exit("host.py: %s is missing: make release (or set EP_VM_BIN)" % BIN)
    shutil.copy(BIN, os.path.join(d, "edgepoint"))
    for f in ("edgepoint.service", "edgepoint.sysusers", "60-edgepoint-gpio.rules",
              "edgepoint-bind-low-port.conf"):
        shutil.copy(os.path.join(ROOT, "systemd", f), d)
    for f in ("guest.sh", "probe.sh"):
        shutil.copy(os.path.join(HERE, f), d)
    with open(os.path.join(d, "edgepoint.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    img = os.path.join(VM, "payload.img")
    if os.path.exists(img):
        os.remove(img)
    subprocess.run(["mkfs.ext4", "-q", "-d", d, img, "64M"], check=True)
    return img


def main():
    img = payload()
    console = os.path.join(VM, "console.log")
    if os.path.exists(console):
        os.remove(console)
    cmd = ["qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-smp", "2",
           "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-nic", "none",
           "-kernel", os.path.join(VM, "vmlinuz"), "-initrd", os.path.join(VM, "initrd.img"),
           "-append", "root=/dev/vda rw console=ttyS0 quiet loglevel=3 systemd.show_status=0 "
                      "panic=-1",
           "-drive", "file=%s,format=raw,if=virtio,snapshot=on" % os.path.join(VM, "base.img"),
           "-drive", "file=%s,format=raw,if=virtio,readonly=on" % img,
           "-serial", "file:" + console,   # ttyS0: the console and the results
           "-serial", "pty",               # ttyS1: the Modbus RTU line to the simulator
           "-serial", "null",              # ttyS2: a UART for the sandbox probe
           "-device", "qemu-xhci", "-chardev", "pty,id=usbser",  # ttyUSB0: to a simulator
           "-device", "usb-serial,chardev=usbser"]
    t0 = time.monotonic()
    # QEMU names the pty of serial1 on its standard output.
    qemu = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    ptys = {}
    sims = []
    try:
        while len(ptys) < 2:
            line = qemu.stdout.readline()
            if not line:
                sys.exit("host.py: qemu exited: %s" % qemu.wait())
            m = re.search(r"char device redirected to (/dev/pts/\d+) \(label (\w+)\)", line)
            if m:
                ptys[m.group(2)] = m.group(1)
            else:
                sys.stdout.write(line)
        for label, value in (("serial1", 4321), ("usbser", 1111)):
            sims.append(Sim("pymodbus", device=ptys[label], baud=19200, units=(1,)).start())
            sims[-1].set("hr", 0, [value])
        print("host.py: booting (qemu -accel tcg), ttyS1 on %s, ttyUSB0 on %s, console %s"
              % (ptys["serial1"], ptys["usbser"], console), flush=True)
        seen = 0
        result = None
        while True:
            done = qemu.poll() is not None
            text = open(console, errors="replace").read() if os.path.exists(console) else ""
            lines = [l.rstrip("\r") for l in text.split("\n")]
            for l in lines[seen:-1]:
                if l.startswith("VMTEST "):
                    print(l[7:], flush=True)
                    m = re.fullmatch(r"VMTEST (\d+) passed, (\d+) failed", l)
                    if m:
                        result = (int(m.group(1)), int(m.group(2)))
            seen = max(seen, len(lines) - 1)
            if done:
                break
            if time.monotonic() - t0 > TIMEOUT:
                print("host.py: timed out after %ds; the console's end:\n%s"
                      % (TIMEOUT, "\n".join(lines[-40:])))
                qemu.kill()
                qemu.wait()
                return 1
            time.sleep(0.5)
        print("host.py: the VM ran %.0f s" % (time.monotonic() - t0))
        if result is None:
            print("host.py: no result line; the console's end:\n%s" % "\n".join(lines[-60:]))
            return 1
        return 0 if result[1] == 0 and result[0] > 0 else 1
    finally:
        for sim in sims:
            sim.stop()
        if qemu.poll() is None:
            qemu.kill()
            qemu.wait()


if __name__ == "__main__":
    sys.exit(main())
