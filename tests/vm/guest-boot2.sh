# guest-boot2.sh - sourced by guest.sh on the second boot of the disk image that boot 1
# installed the package on and powered off cleanly: the service must be back by
# itself with the point written before the poweroff; an upgrade to a later version
# restarts it and keeps the edited configuration; then apt purge must remove what
# the package added (the binary, the unit and its enablement, the configuration, the
# statoverrides, the udev and sysusers files) and keep /var/lib/edgepoint.
check "the same disk: boot 1 finished its checks" test -f /var/lib/ep-vmtest/boot1-done
check "after the reboot the service came up by itself (enabled), active, no restarts" \
	until_ok 60 sh -c 'test "$(systemctl show -p ActiveState --value edgepoint)/$(systemctl show -p NRestarts --value edgepoint)" = active/0'
say "# $(systemctl show -p ActiveEnterTimestamp edgepoint), boot at $(uptime -s)"
check "the point written before the reboot reads back: v1 persist = 777" \
	until_ok 30 sh -c 'test "$(edgepoint get v1 persist)" = 777'
check "the Modbus poll works again after the reboot: u0 = 4321" \
	until_ok 30 sh -c 'test "$(edgepoint get u0 value)" = 4321'
check "the database is still edgepoint's" test "$(stat -c %U /var/lib/edgepoint/edgepoint.db)" = edgepoint

# --- an upgrade: the service restarts on the new package, the edited file stays ---
pid=$(prop MainPID)
up=$(ls $P/upgrade/edgepoint_*.deb)
cp "$up" /root/
check "apt install ./$(basename "$up") (an upgrade)" sh -c "cd /root && DEBIAN_FRONTEND=noninteractive apt install -y -q ./$(basename "$up")"
check "upgrade: dpkg has the new version" test "$(dpkg-query -W -f='${Version}' edgepoint)" = "$(dpkg-deb -f "$up" Version)"
check "upgrade: restarted (a new main process), active, still enabled" sh -c "
	test \"\$(systemctl show -p MainPID --value edgepoint)\" != $pid &&
	systemctl is-active -q edgepoint && test \"\$(systemctl is-enabled edgepoint)\" = enabled"
check "upgrade: the edited configuration is kept, root:edgepoint 0640" sh -c '
	grep -q "\"device_id\": \"vm-gw\"" /etc/edgepoint/edgepoint.json &&
	test "$(stat -c "%U:%G %a" /etc/edgepoint/edgepoint.json)" = "root:edgepoint 640"'
check "upgrade: the data is still there: v1 persist = 777" \
	until_ok 30 sh -c 'test "$(edgepoint get v1 persist)" = 777'

# --- apt purge ---
pid=$(prop MainPID)
check "apt purge edgepoint" sh -c 'DEBIAN_FRONTEND=noninteractive apt-get purge -y -q edgepoint'
check "purge: the service was stopped" sh -c "! kill -0 $pid 2>/dev/null"
check "purge: the package is gone from dpkg's database" sh -c '! dpkg-query -W edgepoint 2>/dev/null'
check "purge: the unit is gone (not-found) and not enabled" sh -c '
	test "$(systemctl show -p LoadState --value edgepoint)" = not-found &&
	! ls /etc/systemd/system/*.wants/edgepoint.service 2>/dev/null && ! test -e /etc/systemd/system/edgepoint.service'
check "purge: the binary, the unit, the udev rule, the sysusers file are gone" sh -c '
	for f in /usr/bin/edgepoint /lib/systemd/system/edgepoint.service /lib/udev/rules.d/60-edgepoint-gpio.rules \
		/usr/lib/sysusers.d/edgepoint.conf /usr/share/doc/edgepoint; do ! test -e "$f" || { echo "$f"; exit 1; }; done'
check "purge: /etc/edgepoint (the conffile, modified by the test) is gone" sh -c '! test -e /etc/edgepoint'
check "purge: no statoverride left" sh -c '! dpkg-statoverride --list | grep -q edgepoint'
check "purge: /var/lib/edgepoint and its database are kept" \
	sh -c 'test -s /var/lib/edgepoint/edgepoint.db && test -f /var/lib/edgepoint/from-root'
say "# kept after the purge: $(ls /var/lib/edgepoint | tr '\n' ' '); $(id edgepoint 2>&1)"
finish
