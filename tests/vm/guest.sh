#!/bin/sh
# guest.sh - runs as root inside the VM that tests/vm/run.sh boots, with systemd as
# PID 1, from the payload disk mounted at /mnt/payload, once per boot of the same
# disk image (host.py boots it twice; ep.phase= on the kernel command line says
# which boot this is):
#   boot 1  installs the package (apt install ./edgepoint_*.deb) and checks what
#           the postinst did, then the hardened unit: what it must still allow and
#           what it must not, READY=1, the watchdog, reload, journald's priorities;
#           writes a point and powers off.
#   boot 2  the service came up by itself with its data; apt purge removes what the
#           package added and keeps /var/lib/edgepoint.
# Every result is a line "VMTEST ok - ..." or "VMTEST not ok - ..." on the console
# (ttyS0), the last one of a boot "VMTEST N passed, N failed"; then the VM powers off.
#
# The host runs Modbus RTU simulators on the VM's second serial port (ttyS1, a
# 16550 UART: the kernel's 8250 driver, major 4), holding 4321 in register 0, and on
# QEMU's USB serial adapter (an FTDI: ftdi_sio, ttyUSB0, major 188), holding 1111.
P=/mnt/payload
export PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin
pass=0
fail=0
say() { echo "VMTEST $*"; }
ok() { pass=$((pass + 1)); say "ok - $*"; }
bad() { fail=$((fail + 1)); say "not ok - $*"; }
# check DESCRIPTION COMMAND...: ok if the command succeeds, else its output.
check() {
	d=$1
	shift
	if "$@" >/tmp/check.out 2>&1; then ok "$d"; else
		bad "$d"
		tail -n 15 /tmp/check.out | sed 's/^/VMTEST #   /'
	fi
}
# until SECONDS COMMAND...: retries once a second.
until_ok() {
	n=$1
	shift
	i=0
	while [ "$i" -lt "$n" ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 1
		i=$((i + 1))
	done
	"$@"
}
prop() { systemctl show -p "$1" --value edgepoint; }
journal() { journalctl -q -u edgepoint -o cat --no-pager; }
status_field() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
finish() {
	say "$pass passed, $fail failed"
	systemctl poweroff --no-block
	exit 0
}

phase=$(sed -n 's/.*ep\.phase=\([0-9]*\).*/\1/p' /proc/cmdline)
say "# boot ${phase:-?}: systemd $(systemctl --version | head -n 1 | cut -d' ' -f2), kernel $(uname -r)"
[ "$phase" = 2 ] && . $P/guest-boot2.sh

# --- before the install: a GPIO chip, a PTY line, a root-era state directory ---
modprobe gpio-mockup gpio_mockup_ranges=-1,8 2>/dev/null ||
	modprobe gpio-sim 2>/dev/null || true
# /dev/mem's numbers in a node anyone may open: only the device cgroup can refuse it.
mknod -m 0666 /dev/ep-mem-0666 c 1 1
mkdir -p /run/ep-pty
socat pty,raw,echo=0,group=dialout,perm=0660,link=/run/ep-pty/a \
	pty,raw,echo=0,link=/run/ep-pty/b &
# A state directory left by the old unit, which ran as root.
mkdir -p /var/lib/edgepoint && touch /var/lib/edgepoint/from-root
# A host name with two addresses: glibc sorts them, which asks netlink for the
# interfaces, and RestrictAddressFamilies= has no AF_NETLINK.
printf '127.0.0.1\tmulti.test\n::1\tmulti.test\n' >>/etc/hosts

# --- the install: the package, offline (its one dependency, systemd, is here) ---
cp $P/edgepoint_*.deb /root/
deb=$(ls /root/edgepoint_*.deb)
say "# $(basename "$deb"): $(dpkg-deb -f "$deb" Version Architecture Depends | tr '\n' ' ')"
t0=$(date +%s)
check "apt install ./$(basename "$deb") (no network in the VM)" sh -c "cd /root && DEBIAN_FRONTEND=noninteractive apt install -y -q ./$(basename "$deb")"
say "# apt install took $(($(date +%s) - t0)) s"
check "the postinst enabled the unit" test "$(systemctl is-enabled edgepoint)" = enabled
check "the postinst started it: active (running), StatusText from READY=1" \
	test "$(prop ActiveState)/$(prop SubState)/$(prop StatusText)" = "active/running/running"
check "it runs the packaged default (/usr/bin, data /var/lib/edgepoint, bus 127.0.0.1:4222)" \
	sh -c 'readlink /proc/$(systemctl show -p MainPID --value edgepoint)/exe | grep -qx /usr/bin/edgepoint &&
		journalctl -q -u edgepoint -o cat | grep -q "ready: device [^,]*, data /var/lib/edgepoint, bus 127.0.0.1:4222$"'
check "the bus answers on the default configuration: edgepoint tree" edgepoint tree
check "/etc/edgepoint/edgepoint.json is a conffile" \
	sh -c "dpkg-query -W -f='\${Conffiles}' edgepoint | grep -q '^ /etc/edgepoint/edgepoint.json '"
check "the configuration is root:edgepoint 0640 in a 0750 directory (statoverride)" \
	test "$(stat -c '%U:%G %a' /etc/edgepoint /etc/edgepoint/edgepoint.json | tr '\n' ' ')" = "root:edgepoint 750 root:edgepoint 640 "
check "check-config as the service user passes on the packaged file" \
	runuser -u edgepoint -- edgepoint check-config /etc/edgepoint/edgepoint.json
check "the package's files are in place" sh -c 'for f in /usr/bin/edgepoint /lib/systemd/system/edgepoint.service \
	/usr/lib/sysusers.d/edgepoint.conf /lib/udev/rules.d/60-edgepoint-gpio.rules \
	/usr/share/doc/edgepoint/copyright /usr/share/doc/edgepoint/examples/edgepoint-bind-low-port.conf \
	/usr/share/man/man1/edgepoint.1.gz; do dpkg -S "$f" >/dev/null || { echo "$f"; exit 1; }; done'
# The test's configuration replaces the default, as a site engineer's would.
install -m 640 -g edgepoint $P/edgepoint.json /etc/edgepoint/edgepoint.json
udevadm settle
say "# $(id edgepoint)"
check "the edgepoint user is in dialout and gpio" sh -c 'id -nG edgepoint | grep -qw dialout && id -nG edgepoint | grep -qw gpio'
if [ -e /dev/gpiochip0 ]; then
	gpio=rw
	check "the udev rule gives /dev/gpiochip0 to gpio, 0660" \
		test "$(stat -c '%G %a' /dev/gpiochip0)" = "gpio 660"
else
	# Debian's amd64 kernel has no gpio-mockup or gpio-sim and QEMU no GPIO chip:
	# a node with the gpiochip major, as the rule would make it. Opening it gets
	# past the device cgroup and the file permissions, then finds no chip: ENXIO.
	gpio=ENXIO
	major=$(awk '$2 == "gpiochip" {print $1}' /proc/devices)
	say "# no GPIO chip in this kernel: /dev/gpiochip0 made by hand (major $major), root:gpio 0660"
	mknod -m 0660 /dev/gpiochip0 c "$major" 0 && chgrp gpio /dev/gpiochip0
fi
check "udevd took the rules without an error" \
	sh -c '! journalctl -q -b -u systemd-udevd --no-pager | grep -i "60-edgepoint"' 
check "ttyS1 is root:dialout 0660 (Debian's udev rules)" \
	test "$(stat -c '%U:%G %a' /dev/ttyS1)" = "root:dialout 660"
check "ttyUSB0 (QEMU's FTDI adapter, ftdi_sio) is root:dialout 0660" \
	test "$(stat -c '%U:%G %a' /dev/ttyUSB0)" = "root:dialout 660"

# --- start: active only after READY=1 ---
# A daemon that exits before READY=1 (the bus port taken) fails the start job and
# never reaches active; Type=simple would have reported a successful start.
systemctl stop edgepoint
entered=$(prop ActiveEnterTimestampMonotonic)
socat TCP-LISTEN:4222,bind=127.0.0.1,reuseaddr,fork /dev/null &
squat=$!
until_ok 10 sh -c 'socat -u OPEN:/dev/null TCP:127.0.0.1:4222' >/dev/null
since=$(date '+%Y-%m-%d %H:%M:%S')
check "start with the bus port taken: the start job fails" sh -c '! timeout 120 systemctl start edgepoint'
# Restart=on-failure would go on trying every RestartSec: stop it while the port is
# still taken, then look at whether any attempt reached active.
systemctl stop edgepoint
say "# port taken: $(prop NRestarts) restarts, result $(prop Result), active entered at $(prop ActiveEnterTimestampMonotonic) (before: $entered)"
check "start with the bus port taken: never active" \
	test "$(prop ActiveEnterTimestampMonotonic)" = "$entered"
check "start with the bus port taken: the journal says why" sh -c \
	"journalctl -q -u edgepoint -o cat --since '$since' | grep -q 'cannot listen on 127.0.0.1:4222'"
kill $squat
wait $squat 2>/dev/null
systemctl reset-failed edgepoint
t0=$(date +%s)
check "systemctl start edgepoint (the test's configuration)" systemctl start edgepoint
check "active (running) after the start job, StatusText=running from READY=1" \
	test "$(prop ActiveState)/$(prop SubState)/$(prop StatusText)" = "active/running/running"
check "the ready line is in the journal" sh -c 'journalctl -q -u edgepoint -o cat | grep -q " ready: "'
check "ExecStartPre check-config passed (as edgepoint, the file root:edgepoint 0640)" \
	sh -c 'journalctl -q -u edgepoint -o cat | grep -v "configuration error"; systemctl show -p ExecStartPre edgepoint | grep -q "status=0"'
pid=$(prop MainPID)
uid=$(id -u edgepoint)
say "# main pid $pid: $(grep -E '^(Uid|Gid|Groups|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/$pid/status | tr -s '\t\n' '  ')"
check "runs as edgepoint, not root" test -n "$uid" -a "$(status_field $pid Uid)" = "$uid"
check "supplementary groups dialout and gpio" sh -c "grep '^Groups:' /proc/$pid/status | grep -qw $(getent group dialout | cut -d: -f3) && grep '^Groups:' /proc/$pid/status | grep -qw $(getent group gpio | cut -d: -f3)"
check "no capabilities: effective, bounding, ambient" \
	test "$(status_field $pid CapEff)$(status_field $pid CapBnd)$(status_field $pid CapAmb)" = "000000000000000000000000000000000000000000000000"
check "no_new_privs and a seccomp filter" test "$(status_field $pid NoNewPrivs)/$(status_field $pid Seccomp)" = "1/2"

# --- the state directory ---
check "the database is in /var/lib/edgepoint, owned by edgepoint" \
	test "$(stat -c %U /var/lib/edgepoint/edgepoint.db)" = edgepoint
check "StateDirectory= gave the root-era files to edgepoint" \
	test "$(stat -c %U /var/lib/edgepoint/from-root)" = edgepoint
check "the state directory is edgepoint 0750" test "$(stat -c '%U %a' /var/lib/edgepoint)" = "edgepoint 750"

# --- the bus, the serial port, the PTY ---
check "the bus answers: set then get" sh -c 'edgepoint set v1 probe 42 && test "$(edgepoint get v1 probe)" = 42'
check "polls the host's simulator over ttyS1 (8250 UART): u0 = 4321" \
	until_ok 30 sh -c 'test "$(edgepoint get u0 value)" = 4321'
check "polls the host's second simulator over ttyUSB0 (USB serial): s0 = 1111" \
	until_ok 30 sh -c 'test "$(edgepoint get s0 value)" = 1111'
check "serves Modbus RTU on a socat PTY: mbpoll reads 99" sh -c '
	edgepoint set p0 value 99 &&
	i=0; until mbpoll -m rtu -b 19200 -P even -a 1 -r 0 -1 -0 -o 1 /run/ep-pty/b 2>&1 | grep -Eq "^\[0\]:\s+99$"; do
		i=$((i + 1)); [ $i -lt 20 ] || { mbpoll -m rtu -b 19200 -P even -a 1 -r 0 -1 -0 -o 1 /run/ep-pty/b; exit 1; }; sleep 1; done'
check "a host name with two addresses resolves (no AF_NETLINK)" \
	until_ok 20 sh -c 'journalctl -q -u edgepoint -o cat | grep -Eq "connect to (127\.0\.0\.1|\[::1\]):4223"'
say "# $(journalctl -q -u edgepoint -o cat | grep -m1 'multi.test' || true)"
check "port 502 without the drop-in: refused (no CAP_NET_BIND_SERVICE)" \
	until_ok 10 sh -c 'journalctl -q -u edgepoint -o cat | grep -q "cannot listen on 127.0.0.1:502: Permission denied"'

# --- journald: each line with its level as PRIORITY (the <N> prefix, JOURNAL_STREAM) ---
pri() { # pri TEXT: the PRIORITY of edgepoint's journal entries whose MESSAGE has TEXT
	journalctl -q -u edgepoint -o json --output-fields=PRIORITY,MESSAGE --no-pager |
		grep -F "$1" | grep -o '"PRIORITY":"[0-9]"' | grep -o '[0-9]' | sort -u | tr -d '\n'
}
check "journald: the refused port 502 is a warning (PRIORITY 4)" test "$(pri 'low: cannot listen on 127.0.0.1:502')" = 4
check "journald: a Modbus line connected is info (PRIORITY 6)" test "$(pri 'uart: connected')" = 6
check "journald: the ready line is a notice (PRIORITY 5)" test "$(pri ' ready: device vm-gw')" = 5
check "journald: no <N> prefix left in a message" sh -c '! journalctl -q -u edgepoint -o cat | grep -q "^<[0-7]>"'
say "# $(journalctl -q -u edgepoint -o json --output-fields=PRIORITY,MESSAGE --no-pager | grep -F 'low: cannot listen' | head -n 1)"

# --- reload, watchdog ---
# The reload file is the test's with one more node, v2: it must appear, in the
# same process.
install -m 640 -g edgepoint $P/edgepoint-reload.json /etc/edgepoint/edgepoint.json
rsince=$(date '+%Y-%m-%d %H:%M:%S')
check "systemctl reload: the file is reloaded" sh -c 'systemctl reload edgepoint &&
	i=0; until journalctl -q -u edgepoint -o cat | grep -q "configuration reloaded"; do
		i=$((i + 1)); [ $i -lt 15 ] || exit 1; sleep 1; done'
check "systemctl reload: the node the file added is there" until_ok 10 sh -c 'test "$(edgepoint get v2 reloaded)" = 1'
check "systemctl reload: same main process, no restart" test "$(prop MainPID)/$(prop NRestarts)" = "$pid/0"
journalctl -q -u edgepoint -o cat --since "$rsince" | grep -Ev '^(modbus|sync|natsc): ' |
	sed 's/^/VMTEST # after the reload: /'
now=$(date +%s)
[ $((now - t0)) -lt 40 ] && sleep $((40 - (now - t0)))
check "alive past WatchdogSec=30s: the pings reach systemd" \
	test "$(prop MainPID)/$(prop NRestarts)/$(prop ActiveState)" = "$pid/0/active"
kill -STOP "$pid"
check "a stopped loop is killed by the watchdog and restarted" \
	until_ok 90 sh -c 'test "$(systemctl show -p NRestarts --value edgepoint)" = 1 && systemctl is-active -q edgepoint'
check "the journal says why" sh -c 'journalctl -q -u edgepoint --no-pager | grep -q -i "watchdog timeout"'

# --- the sandbox, seen from inside: the same unit with a probe as its program ---
probe_unit() { # NAME EXTRA-SETTINGS: a copy of edgepoint.service that runs probe.sh
	sed -e '/^ExecStartPre=/d' -e '/^ExecReload=/d' -e 's/^Type=notify/Type=oneshot/' \
		-e '/^WatchdogSec=/d' -e '/^Restart=/d' \
		-e "s|^ExecStart=.*|ExecStart=/bin/sh $P/probe.sh|" \
		/lib/systemd/system/edgepoint.service >/etc/systemd/system/$1.service
	printf '[Service]\nStandardOutput=journal\n%s\n' "$2" >/tmp/extra.conf
	mkdir -p /etc/systemd/system/$1.service.d
	mv /tmp/extra.conf /etc/systemd/system/$1.service.d/extra.conf
	systemctl daemon-reload
	systemctl start $1
	journalctl -q -u $1 -o cat --no-pager | grep '^probe ' | sed "s/^/VMTEST # $1: /"
}
probe_unit ep-probe ""
for line in "gpiochip0 $gpio" "ttyS2 ro" "pty ro" "kmsg EACCES|kmsg EPERM" "vda EACCES" \
	"mem-0666 EPERM" "etc read-only" "home hidden" "proc own" "meminfo hidden"; do
	check "sandbox: $line" sh -c "journalctl -q -u ep-probe -o cat | grep -Eqx 'probe ($line)'"
done
probe_unit ep-probe-pu "PrivateUsers=yes"
say "# PrivateUsers=yes (not in the unit): $(journalctl -q -u ep-probe-pu -o cat | grep '^probe ' | tr '\n' ';')"

say "# security: $(systemd-analyze security edgepoint 2>/dev/null | tail -n 1)"

# --- port 502 with the opt-in drop-in (the package ships it as an example) ---
install -D -m 644 /usr/share/doc/edgepoint/examples/edgepoint-bind-low-port.conf \
	/etc/systemd/system/edgepoint.service.d/bind-low-port.conf
systemctl daemon-reload && systemctl restart edgepoint
pid=$(prop MainPID)
say "# with the drop-in: $(grep -E '^(CapEff|CapBnd|CapAmb):' /proc/$pid/status | tr -s '\t\n' '  ')"
check "with bind-low-port.conf: only CAP_NET_BIND_SERVICE (bit 10)" \
	test "$(status_field $pid CapEff)/$(status_field $pid CapBnd)" = "0000000000000400/0000000000000400"
check "with bind-low-port.conf: mbpoll reads port 502" sh -c '
	edgepoint set l0 value 502 &&
	i=0; until mbpoll -m tcp -p 502 -a 1 -r 0 -1 -0 -o 1 127.0.0.1 2>&1 | grep -Eq "^\[0\]:\s+502$"; do
		i=$((i + 1)); [ $i -lt 20 ] || { mbpoll -m tcp -p 502 -a 1 -r 0 -1 -0 -o 1 127.0.0.1; exit 1; }; sleep 1; done'
check "systemctl stop: clean exit" sh -c 'systemctl stop edgepoint && test "$(systemctl show -p ExecMainStatus --value edgepoint)" = 0'
say "# security with the drop-in: $(systemd-analyze security edgepoint 2>/dev/null | tail -n 1)"
rm -r /etc/systemd/system/edgepoint.service.d
systemctl daemon-reload

# --- a configuration file the service user cannot read stops the start ---
chgrp root /etc/edgepoint/edgepoint.json
journalctl --rotate >/dev/null 2>&1
since=$(date '+%Y-%m-%d %H:%M:%S')
systemctl start edgepoint 2>/dev/null
# check-config says why; serve exits 3, which RestartPreventExitStatus= stops at.
check "config root:root 0640: refused, the unit is failed and not restarted" \
	until_ok 20 test "$(prop ActiveState)/$(prop ExecMainStatus)" = failed/3
sleep 5
say "# config root:root 0640: $(prop ActiveState)/$(prop Result), $(prop NRestarts) restarts, check-config $(systemctl show -p ExecStartPre edgepoint | grep -o 'status=[0-9]*' | head -n 1), serve status=$(prop ExecMainStatus); $(journalctl -q -u edgepoint -o cat --since "$since" | grep -m1 -i 'edgepoint.json' || true)"
check "config root:root 0640: still failed 5 s later, no restart loop" \
	test "$(prop ActiveState)" = failed
check "config root:root 0640: the journal says why" sh -c \
	"journalctl -q -u edgepoint -o cat --since '$since' | grep -q 'edgepoint.json: cannot open: Permission denied'"
chgrp edgepoint /etc/edgepoint/edgepoint.json
systemctl reset-failed edgepoint

# --- data for the second boot: a point, committed (acknowledged) before poweroff ---
check "started again; a point written for the next boot" sh -c 'systemctl start edgepoint &&
	edgepoint set v1 persist 777 && test "$(edgepoint get v1 persist)" = 777'
mkdir -p /var/lib/ep-vmtest && date +%s >/var/lib/ep-vmtest/boot1-done
journal | tail -n 40 | sed 's/^/VMTEST # journal: /'
finish
