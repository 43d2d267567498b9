"""The systemd unit, checked without a running systemd: `systemd-analyze security
--offline` scores systemd/edgepoint.service (exposure at most 2.5, the score printed),
the settings that matter are checked one by one, systemd-sysusers creates the user
and every group the unit names, and the release daemon, traced with strace -f while
it polls a Modbus RTU line over a socat PTY, a Modbus TCP device, serves Modbus TCP,
takes TLS clients, links over TLS, reloads and stops, makes only system calls that
the unit's SystemCallFilter allows.

What needs systemd as PID 1 (the unit actually starting as the edgepoint user in
its sandbox) is tests/vm/, which is opt-in.
"""
import grp
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from conftest import ROOT, NatsClient, free_port, wait_for
from mbsim import Sim, wait_value
from peers import make_certs

SYSTEMD = os.path.join(ROOT, "systemd")
UNIT = os.path.join(SYSTEMD, "edgepoint.service")
SYSUSERS = os.path.join(SYSTEMD, "edgepoint.sysusers")
UDEV_RULE = os.path.join(SYSTEMD, "60-edgepoint-gpio.rules")
LOW_PORT = os.path.join(SYSTEMD, "edgepoint-bind-low-port.conf")
RELEASE = os.environ.get("EP_RELEASE_BIN", os.path.join(ROOT, "build", "edgepoint"))
MAX_EXPOSURE = 2.5

# The system calls of `edgepoint serve` and `edgepoint check-config` (the release
# binary, as a non-root user), measured with `strace -f -c` over the whole
# integration suite (EP_BIN set to a wrapper running build/edgepoint under
# `strace -D -f -c`, the suite run as uid 65534): every serve and check-config run.
# Run as root, SQLite also calls fchown on its -wal and -shm files; it never does as
# another user, and the unit never runs as root. uname comes from glibc's resolver
# (its default domain, when the link's host is a name), which only the workload
# below exercises; dup3 comes with the low descriptor pool (src/core/lowfd.c).
# GPIO (not written yet) will add only ioctl, read and poll on /dev/gpiochipN, which
# are here already.
MEASURED = """
accept4 arch_prctl bind brk clock_nanosleep clone3 close connect dup3 epoll_create1
epoll_ctl epoll_wait eventfd2 execve fcntl fdatasync ftruncate futex geteuid
getpeername getpid getrandom getsockname getsockopt ioctl listen lseek madvise
mkdir mmap mprotect mremap munmap newfstatat openat pipe2 poll pread64 prlimit64
pselect6 pwrite64 read readlink recvfrom recvmsg rseq rt_sigaction rt_sigprocmask
rt_sigreturn sched_yield sendto set_robust_list set_tid_address setsockopt shutdown
socket sysinfo uname unlink write
""".split()

# Serial drivers (their names in /proc/devices) and GPIO chips the unit must allow.
DEVICES = ["ttyS", "ttyUSB", "ttyACM", "ttyAMA", "ttySC", "ttymxc", "ttyLP", "ttyXR",
           "gpiochip"]


def analyze(*args, check=True):
    exe = shutil.which("systemd-analyze")
    assert exe, "systemd-analyze is missing: install Debian's systemd (scripts/setup.sh)"
    r = subprocess.run([exe, "--no-pager"] + list(args), capture_output=True, text=True,
                       timeout=60)
    if check:
        assert r.returncode == 0, "systemd-analyze %s: %s%s" % (args, r.stdout, r.stderr)
    return r


def unit_settings(path):
    """[Service] (and [Unit]) settings of a unit file as {key: [values]}, in order."""
    out = {}
    with open(path) as f:
        text = f.read().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[":
            continue
        k, _, v = line.partition("=")
        out.setdefault(k.strip(), []).append(v.strip())
    return out


def copy_unit(tmp_path, dropin=None):
    d = tmp_path / "units"
    d.mkdir()
    shutil.copy(UNIT, d / "edgepoint.service")
    if dropin:
        (d / "edgepoint.service.d").mkdir()
        shutil.copy(dropin, d / "edgepoint.service.d" / "bind-low-port.conf")
    return str(d / "edgepoint.service")


def exposure(path):
    """(score, report) from systemd-analyze security --offline on a copy of the unit."""
    r = analyze("security", "--offline=true", "--threshold=%d" % (MAX_EXPOSURE * 10), path,
                check=False)
    # Unknown or misspelt settings are warnings on stderr that systemd ignores: none.
    assert r.stderr == "", r.stderr
    m = re.search(r"Overall exposure level for edgepoint\.service: (\d+\.\d+) (\w+)", r.stdout)
    assert m, r.stdout
    failed = "\n".join(l for l in r.stdout.splitlines() if l.startswith("\u2717"))
    return float(m.group(1)), m.group(2), r.returncode, failed


def test_exposure_score_at_most_2_5(tmp_path):
    score, label, rc, failed = exposure(copy_unit(tmp_path))
    print("\nsystemd-analyze security --offline=true systemd/edgepoint.service: "
          "exposure %.1f %s (at most %.1f)\nwhat still counts:\n%s"
          % (score, label, MAX_EXPOSURE, failed))
    assert score <= MAX_EXPOSURE and rc == 0, \
        "exposure %.1f %s > %.1f:\n%s" % (score, label, MAX_EXPOSURE, failed)


def test_exposure_with_the_low_port_dropin(tmp_path):
    """The opt-in drop-in for port 502 adds CAP_NET_BIND_SERVICE and nothing else."""
    path = copy_unit(tmp_path, dropin=LOW_PORT)
    score, label, rc, failed = exposure(path)
    print("\nwith systemd/edgepoint-bind-low-port.conf: exposure %.1f %s" % (score, label))
    assert score <= MAX_EXPOSURE and rc == 0, failed
    items = security_items(path)
    assert items["AmbientCapabilities="] is False  # it does receive one
    for cap in ("CAP_SYS_ADMIN", "CAP_SYS_RAWIO", "CAP_NET_ADMIN", "CAP_SYS_PTRACE",
                "CAP_(DAC_*|FOWNER|IPC_OWNER)", "CAP_SET(UID|GID|PCAP)"):
        assert items["CapabilityBoundingSet=~" + cap] is True, cap
    s = unit_settings(LOW_PORT)
    assert s["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert s["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]


def security_items(path):
    r = analyze("security", "--offline=true", "--json=short", path)
    return {i["name"]: i["set"] for i in json.loads(r.stdout)}


def test_what_systemd_analyze_sees(tmp_path):
    items = security_items(copy_unit(tmp_path))
    must = ["User=/DynamicUser=", "NoNewPrivileges=", "AmbientCapabilities=",
            "MemoryDenyWriteExecute=", "ProtectSystem=", "ProtectHome=", "PrivateTmp=",
            "ProtectProc=", "ProcSubset=", "ProtectKernelLogs=", "ProtectKernelModules=",
            "ProtectKernelTunables=", "ProtectControlGroups=", "ProtectClock=",
            "ProtectHostname=", "LockPersonality=", "RestrictRealtime=",
            "RestrictSUIDSGID=", "SystemCallArchitectures=", "RemoveIPC=",
            "RestrictAddressFamilies=~AF_PACKET", "RestrictAddressFamilies=~AF_NETLINK",
            "RestrictAddressFamilies=~\u2026"]
    must += [k for k in items if k.startswith(("CapabilityBoundingSet=~",
                                               "SystemCallFilter=~", "RestrictNamespaces=~"))]
    assert len([k for k in must if k.startswith("SystemCallFilter=~")]) >= 11
    missing = [k for k in must if items.get(k) is not True]
    assert not missing, missing
    # UMask=0027: group-readable for the edgepoint group (backups, an operator);
    # systemd-analyze counts that 0.1 and wants 0077.
    assert unit_settings(UNIT)["UMask"] == ["0027"]


def test_unit_settings():
    s = unit_settings(UNIT)
    one = {k: v[-1] for k, v in s.items()}
    # A dedicated user, no capabilities at all.
    assert one.get("User") not in (None, "", "root", "0") or one.get("DynamicUser") == "yes"
    assert one["CapabilityBoundingSet"] == "" and one["AmbientCapabilities"] == ""
    assert one["NoNewPrivileges"] == "yes"
    # The daemon as systemd drives it.
    assert one["Type"] == "notify" and one["NotifyAccess"] == "main"
    assert one["WatchdogSec"] and one["Restart"] == "on-failure"
    assert one["ExecReload"].endswith("kill -HUP $MAINPID")
    assert one["StateDirectory"] == "edgepoint"
    serve = one["ExecStart"].split()
    check = one["ExecStartPre"].split()
    # "-": a bad file must end in serve's exit code 3 (no restart), not in a failed
    # ExecStartPre, which Restart=on-failure would retry forever.
    assert check[0].startswith("-")
    check[0] = check[0][1:]
    assert "3" in one["RestartPreventExitStatus"].split()
    assert serve[0] == check[0] and serve[1:3] == ["serve", "-c"]
    assert check[1] == "check-config" and check[2] == serve[3]  # the same file
    # System calls: the service set minus privileged and resource calls, EPERM.
    assert s["SystemCallFilter"][0] == "@system-service"
    assert set(" ".join(s["SystemCallFilter"][1:]).lstrip("~").split()) >= \
        {"@privileged", "@resources"}
    assert one["SystemCallErrorNumber"] == "EPERM"
    assert one["MemoryDenyWriteExecute"] == "yes" and one["RestrictNamespaces"] == "yes"
    assert one["RestrictAddressFamilies"].split() == ["AF_UNIX", "AF_INET", "AF_INET6"]
    # Devices: every serial driver and GPIO chips, read-write, nothing else open.
    assert one["DevicePolicy"] == "closed"
    allowed = {}
    for v in s["DeviceAllow"]:
        name, _, mode = v.partition(" ")
        allowed[name] = mode
    for dev in DEVICES:
        names = [n for n in allowed if re.fullmatch(n.replace("*", ".*"), "char-" + dev)]
        assert names and all(allowed[n] == "rw" for n in names), (dev, allowed)
    # File descriptors: max_connections bus clients plus a margin for the daemon.
    with open(os.path.join(ROOT, "config", "edgepoint.example.json")) as f:
        max_conn = json.load(f)["bus"]["max_connections"]
    assert max_conn >= 1024
    assert int(one["LimitNOFILE"]) >= max_conn + 256, (one["LimitNOFILE"], max_conn)


def read_db(root, name):
    rows = {}
    with open(os.path.join(root, "etc", name)) as f:
        for line in f:
            p = line.rstrip("\n").split(":")
            rows[p[0]] = p
    return rows


@pytest.mark.parametrize("base", ["empty", "debian", "gpio-exists"])
def test_sysusers_makes_the_user_and_every_group_the_unit_names(tmp_path, base):
    exe = shutil.which("systemd-sysusers")
    assert exe, "systemd-sysusers is missing: install Debian's systemd (scripts/setup.sh)"
    if os.geteuid() != 0:
        pytest.skip("systemd-sysusers writes /etc/gshadow 0000: it needs root, even with --root")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    if base != "empty":
        (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
        groups = "root:x:0:\ndialout:x:20:\n" + ("gpio:x:997:pi\n" if base == "gpio-exists" else "")
        (root / "etc" / "group").write_text(groups)
    for _ in range(2):  # a second run changes nothing and still succeeds
        with open(SYSUSERS) as f:
            r = subprocess.run([exe, "--root=" + str(root), "-"], stdin=f,
                               capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    users, groups = read_db(root, "passwd"), read_db(root, "group")
    u = users["edgepoint"]
    assert u[2] != "0" and u[6] == "/usr/sbin/nologin" and u[5] == "/var/lib/edgepoint"
    s = unit_settings(UNIT)
    names = [s["User"][-1], s["Group"][-1]] + " ".join(s["SupplementaryGroups"]).split()
    for g in names:
        assert g in groups, (g, groups)  # a missing group makes the unit fail to start
    for g in " ".join(s["SupplementaryGroups"]).split():
        assert "edgepoint" in groups[g][3].split(","), groups[g]
    assert groups[u[0]][2] == u[3]
    if base == "debian":
        assert groups["dialout"][2] == "20"
    if base == "gpio-exists":
        assert groups["gpio"][2] == "997"  # kept, with its members
        assert set(groups["gpio"][3].split(",")) == {"pi", "edgepoint"}


def test_udev_rule_gives_gpio_chips_to_the_group_sysusers_makes():
    with open(UDEV_RULE) as f:
        rules = [l for l in f.read().splitlines() if l.strip() and not l.startswith("#")]
    assert len(rules) == 1
    kv = dict(re.findall(r'(\w+)(?:==|=)"([^"]*)"', rules[0]))
    assert kv == {"SUBSYSTEM": "gpio", "KERNEL": "gpiochip[0-9]*", "GROUP": "gpio",
                  "MODE": "0660"}, kv
    with open(SYSUSERS) as f:
        assert re.search(r"^g\s+gpio\s", f.read(), re.M)


def syscall_set(group, seen=None):
    """The system calls of a systemd-analyze syscall-filter group, nested groups
    expanded."""
    seen = set() if seen is None else seen
    r = analyze("syscall-filter", group)
    names = set()
    for line in r.stdout.splitlines()[1:]:
        w = line.strip()
        if not w or w.startswith("#") or " " in w:
            continue
        if w.startswith("@"):
            if w not in seen:
                seen.add(w)
                names |= syscall_set(w, seen)
        else:
            names.add(w)
    return names


def unit_filter():
    """The system calls the unit's SystemCallFilter= lines allow: the first line is
    an allow list, each later ~ line takes its sets out again."""
    allowed = None
    for v in unit_settings(UNIT)["SystemCallFilter"]:
        deny = v.startswith("~")
        names = set()
        for w in v.lstrip("~").split():
            names |= syscall_set(w) if w.startswith("@") else {w}
        if allowed is None:
            assert not deny, "the first SystemCallFilter= must be an allow list"
            allowed = names
        elif deny:
            allowed -= names
        else:
            allowed |= names
    return allowed


def test_measured_syscalls_are_in_the_filter():
    allowed = unit_filter()
    print("\nthe unit allows %d system calls; the daemon was measured using %d:\n%s"
          % (len(allowed), len(MEASURED), " ".join(MEASURED)))
    assert not set(MEASURED) - allowed, sorted(set(MEASURED) - allowed)
    # What the filter takes away that a service could want, and the daemon does not.
    for name in ("setrlimit", "setuid", "capset", "chown", "fchown", "mount", "ptrace",
                 "reboot", "init_module", "kexec_load", "bpf", "sched_setscheduler"):
        assert name not in allowed, name


# --- the release daemon under strace ------------------------------------------------

class TlsNatsClient(NatsClient):
    """NatsClient over TLS: the INFO line in plaintext, then the handshake."""

    def __init__(self, port, cafile):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        line = b""
        while not line.endswith(b"\r\n"):
            line += raw.recv(1)
        self.info = json.loads(line[5:])
        ctx = ssl.create_default_context(cafile=cafile)
        self.sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        self.buf = b""
        self.sid = 0
        self.send(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
                  b'"tls_required":true}\r\n')
        self.ping()


def traced(out, args, as_user, exe=RELEASE):
    """argv running exe (the release binary) under strace -f -c, as the service would
    (an unprivileged user with dialout), the traced process being the direct child
    (-D)."""
    cmd = ["strace", "-D", "-f", "-qq", "-c", "-o", out, exe] + args
    if as_user:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--groups=%d" % as_user[1]] + cmd
    return cmd


def strace_names(path):
    names = set()
    with open(path) as f:
        for line in f:
            w = line.split()
            if w and re.fullmatch(r"[a-z_0-9]+", w[-1]) and w[-1] not in ("syscall", "total"):
                names.add(w[-1])
    return names


def test_release_daemon_makes_only_allowed_syscalls():
    if not shutil.which("strace"):
        pytest.skip("strace is not installed (scripts/setup.sh installs it)")
    assert os.path.exists(RELEASE), "build the release first (make release)"
    as_user = None
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("setpriv (util-linux) is missing")
        try:
            as_user = (65534, grp.getgrnam("dialout").gr_gid)
        except KeyError:
            as_user = (65534, 65534)
    # The tree the unprivileged daemon sees: readable config and key (root:group 0640,
    # like /etc/edgepoint), its own data directory, a serial line owned by dialout.
    work = tempfile.mkdtemp(prefix="ep-unit-")
    procs = []
    try:
        os.chmod(work, 0o755)
        # A copy the unprivileged user can reach (a checkout under /root is not).
        exe = os.path.join(work, "edgepoint")
        shutil.copy2(RELEASE, exe)
        os.chmod(exe, 0o755)
        gid = 65534 if as_user else os.getegid()  # the service's group (edgepoint)
        tty_gid = as_user[1] if as_user else os.getegid()  # dialout
        certs = make_certs(os.path.join(work, "certs"))
        os.chmod(certs.dir, 0o755)
        for p in (certs.key, certs.cert, certs.ca):
            os.chown(p, -1, gid)
            os.chmod(p, 0o640)
        data, traces = os.path.join(work, "data"), os.path.join(work, "traces")
        for p in (data, traces):
            os.mkdir(p, 0o750)
            if as_user:
                os.chown(p, as_user[0], gid)
        tty_a, tty_b = os.path.join(work, "ttyA"), os.path.join(work, "ttyB")
        socat = subprocess.Popen(
            ["socat", "pty,raw,echo=0,perm=0660,group=%d,link=%s" % (tty_gid, tty_a),
             "pty,raw,echo=0,link=" + tty_b],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(socat)
        wait_for(lambda: os.path.exists(tty_a) and os.path.exists(tty_b), timeout=10,
                 what="the socat PTY pair")
        rtu = Sim("pymodbus", device=tty_b, baud=19200).start()
        tcp = Sim("pymodbus", port=free_port()).start()
        procs += [rtu.proc, tcp.proc]
        rtu.set("hr", 0, [4321])
        tcp.set("hr", 0, [1234])
        bus_port, srv_port = free_port(), free_port()
        cfg = {
            "device_id": "gw-unit", "data_dir": data, "log": {"level": "info"},
            "bus": {"listen": ["127.0.0.1:%d" % bus_port],
                    "tls": {"cert_file": certs.cert, "key_file": certs.key}},
            "nodes": [
                {"id": "rtu", "type": "modbus",
                 "points": {"protocol": "rtu", "port": tty_a, "baud": 19200,
                            "parity": "none", "pollPeriod": 100, "timeout": 300},
                 "children": [{"id": "r0", "type": "modbusIo",
                               "points": {"table": "holdingRegister", "address": 0}}]},
                {"id": "tcp", "type": "modbus",
                 "points": {"protocol": "tcp", "uri": "127.0.0.1:%d" % tcp.port,
                            "pollPeriod": 100},
                 "children": [{"id": "t0", "type": "modbusIo",
                               "points": {"table": "holdingRegister", "address": 0}}]},
                {"id": "srv", "type": "modbus",
                 "points": {"clientServer": "server", "protocol": "tcp",
                            "uri": "127.0.0.1:%d" % srv_port},
                 "children": [{"id": "s0", "type": "modbusIo",
                               "points": {"table": "holdingRegister", "address": 0}}]},
                # The cloud link over TLS, by name, to the daemon's own TLS listener:
                # resolution, handshake and certificate checks, then JetStream errors.
                {"id": "cloud", "type": "sync",
                 "points": {"uri": "tls://localhost:%d" % bus_port, "caFile": certs.ca}},
                {"id": "v1", "type": "variable"}]}
        config = os.path.join(work, "edgepoint.json")
        with open(config, "w") as f:
            json.dump(cfg, f)
        os.chown(config, -1, gid)
        os.chmod(config, 0o640)
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "WATCHDOG_PID", "JOURNAL_STREAM")}

        # ExecStartPre, then ExecStart with a notify socket and a watchdog.
        out_check = os.path.join(traces, "check-config")
        r = subprocess.run(traced(out_check, ["check-config", config], as_user, exe),
                           capture_output=True, text=True, timeout=60, env=env)
        assert r.returncode == 0, r.stdout + r.stderr
        notify_path = os.path.join(work, "notify.sock")
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(notify_path)
        os.chmod(notify_path, 0o777)
        notify.settimeout(30)
        env.update(NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="1000000")
        out_serve = os.path.join(traces, "serve")
        log = open(os.path.join(work, "stderr.log"), "w+")
        d = subprocess.Popen(traced(out_serve, ["serve", "-c", config], as_user, exe),
                             stdout=log, stderr=log, env=env, cwd=work)
        procs.append(d)

        def logged():
            log.seek(0)
            return log.read()
        while "READY=1" not in notify.recv(4096).decode().split("\n"):
            pass
        c = TlsNatsClient(bus_port, certs.ca)
        wait_value(c, "rtu", "r0", 4321)
        wait_value(c, "tcp", "t0", 1234)
        assert c.request("p.s0", json.dumps([{"type": "value", "value": 77}])) == {"ok": True}
        assert c.request("p.v1", json.dumps([{"type": "x", "value": 1}])) == {"ok": True}
        # A Modbus master reads what the server bus serves.
        wait_for(lambda: re.search(r"^\[0\]:\s+77$", subprocess.run(
            ["mbpoll", "-1", "-0", "-m", "tcp", "-p", str(srv_port), "-a", "1", "-r", "0",
             "127.0.0.1"], capture_output=True, text=True, timeout=30).stdout, re.M),
            what="the Modbus server answering 77", interval=0.2)
        wait_for(lambda: "connecting to tls://localhost" in logged(), what="the link")
        while "WATCHDOG=1" not in notify.recv(4096).decode().split("\n"):
            pass
        d.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in logged(), what="the reload")
        c.close()
        d.send_signal(signal.SIGTERM)
        assert d.wait(30) == 0, logged()
        time.sleep(0.2)  # strace, a grandchild, writes its summary when the daemon exits
        wait_for(lambda: os.path.exists(out_serve) and "total" in open(out_serve).read(),
                 timeout=10, what="the strace summary")
        used = strace_names(out_check) | strace_names(out_serve)
        allowed = unit_filter()
        print("\nsystem calls of check-config and serve (%s): %d\n%s"
              % ("uid 65534" if as_user else "uid %d" % os.geteuid(), len(used),
                 " ".join(sorted(used))))
        # fchown: SQLite's, as root only (see MEASURED); denied (EPERM) and harmless.
        extra = used - allowed - ({"fchown"} if not as_user and os.geteuid() == 0 else set())
        assert not extra, "used but not in the unit's SystemCallFilter: %s" % sorted(extra)
        new = used - set(MEASURED)
        if new:  # allowed, so not a failure; worth adding to MEASURED and the docs
            print("not in MEASURED yet: %s" % " ".join(sorted(new)))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(work, ignore_errors=True)
