#!/usr/bin/python3
"""host.py - the host side of tests/vm/run.sh: makes the payload disk (the .deb that
scripts/mkdeb.sh packs from the static binary, the guest scripts, two
configurations), boots a copy of the image that build.sh made with
qemu-system-x86_64 -accel tcg (systemd as PID 1) twice, with Modbus RTU simulators
(tests/modbus/sim_pymodbus.py) on the VM's second serial port and its USB serial
adapter, and prints what guest.sh reports on the console. The second boot is the
same disk after the first one powered off. Exit status 0 when every guest check of
both boots passed.

EP_VM_BIN: the binary (build/edgepoint); EP_VM_WORK: where the payload, the disk
copy and the consoles go (build/vm, beside the cached image); EP_VM_TIMEOUT: seconds
per boot (900).
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
WORK = os.environ.get("EP_VM_WORK", VM)
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
    d = os.path.join(WORK, "payload")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    if not os.path.exists(BIN):
        sys.exit("host.py: %s is missing: make release (or set EP_VM_BIN)" % BIN)
    # The package, as make deb builds it, from the binary under test.
    env = dict(os.environ, EP_DEB_BIN=BIN, EP_DEB_OUT=d)
    subprocess.run([os.path.join(ROOT, "scripts", "mkdeb.sh")], check=True, env=env)
    # The same with a later version, for the upgrade on the second boot.
    deb = [f for f in os.listdir(d) if f.endswith(".deb")][0]
    env.update(EP_DEB_OUT=os.path.join(d, "upgrade"), EP_DEB_VERSION=deb.split("_")[1] + "+up1")
    subprocess.run([os.path.join(ROOT, "scripts", "mkdeb.sh")], check=True, env=env)
    for f in ("guest.sh", "guest-boot2.sh", "probe.sh"):
        shutil.copy(os.path.join(HERE, f), d)
    with open(os.path.join(d, "edgepoint.json"), "w") as f:
        json.dump(CONFIG, f, indent=2)
    # What systemctl reload must bring in: the same file and one more node.
    reload = json.loads(json.dumps(CONFIG))
    reload["nodes"].append({"id": "v2", "type": "variable", "points": {"reloaded": 1}})
    with open(os.path.join(d, "edgepoint-reload.json"), "w") as f:
        json.dump(reload, f, indent=2)
    img = os.path.join(WORK, "payload.img")
    if os.path.exists(img):
        os.remove(img)
    subprocess.run(["mkfs.ext4", "-q", "-d", d, img, "64M"], check=True)
    return img


def main():
    os.makedirs(WORK, exist_ok=True)
    img = payload()
    # Both boots use one copy of the cached image, so the second sees what the first
    # wrote (the package, the database) and the cache stays clean.
    disk = os.path.join(WORK, "disk.img")
    subprocess.run(["cp", "--sparse=always", os.path.join(VM, "base.img"), disk], check=True)
    total = [0, 0]
    t0 = time.monotonic()
    try:
        for phase in (1, 2):
            result = boot(phase, img, disk)
            if result is None:
                return 1
            total[0] += result[0]
            total[1] += result[1]
    finally:
        if os.path.exists(disk):
            os.remove(disk)
    print("host.py: %d passed, %d failed over both boots in %.0f s"
          % (total[0], total[1], time.monotonic() - t0), flush=True)
    return 0 if total[1] == 0 and total[0] > 0 else 1


def boot(phase, img, disk):
    """Boots the disk once; returns guest.sh's (passed, failed), or None."""
    console = os.path.join(WORK, "console-%d.log" % phase)
    if os.path.exists(console):
        os.remove(console)
    cmd = ["qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-smp", "2",
           "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", "-nic", "none",
           "-kernel", os.path.join(VM, "vmlinuz"), "-initrd", os.path.join(VM, "initrd.img"),
           "-append", "root=/dev/vda rw console=ttyS0 quiet loglevel=3 systemd.show_status=0 "
                      "panic=-1 ep.phase=%d" % phase,
           "-drive", "file=%s,format=raw,if=virtio" % disk,
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
        print("host.py: boot %d (qemu -accel tcg), ttyS1 on %s, ttyUSB0 on %s, console %s"
              % (phase, ptys["serial1"], ptys["usbser"], console), flush=True)
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
                return None
            time.sleep(0.5)
        print("host.py: boot %d ran %.0f s" % (phase, time.monotonic() - t0), flush=True)
        if result is None:
            print("host.py: no result line; the console's end:\n%s" % "\n".join(lines[-60:]))
        return result
    finally:
        for sim in sims:
            sim.stop()
        if qemu.poll() is None:
            qemu.kill()
            qemu.wait()


if __name__ == "__main__":
    sys.exit(main())
