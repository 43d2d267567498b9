#!/bin/sh
# probe.sh - run by guest.sh as the program of a copy of edgepoint.service (same user,
# groups and sandbox): says what this sandbox lets a process open, one "probe WHAT
# RESULT" line each.
# rw FILE: rw, ro, or why open() failed: EPERM (the device cgroup), EACCES (file
# permissions), ENXIO (allowed, but no device behind the node), ENOENT.
why() {
	case $1 in
	*"not permitted"*) echo EPERM ;; *"ermission denied"*) echo EACCES ;;
	*"device or address"*) echo ENXIO ;; *"No such file"*) echo ENOENT ;; *) echo "other:$1" ;;
	esac
}
rw() {
	if (exec 3<>"$1") 2>/dev/null; then echo rw; return; fi
	if (exec 3<"$1") 2>/dev/null; then echo ro; return; fi
	why "$( (exec 3<"$1") 2>&1)"
}
# A serial port may block in open() until carrier: stty opens it non-blocking.
tty() { if stty -F "$1" >/dev/null 2>&1; then echo ro; else why "$(stty -F "$1" 2>&1)"; fi; }
echo "probe gpiochip0 $(rw /dev/gpiochip0)"
echo "probe ttyS2 $(tty /dev/ttyS2)"
echo "probe pty $(tty /run/ep-pty/a)"
echo "probe kmsg $(rw /dev/kmsg)"
echo "probe vda $(rw /dev/vda)"
echo "probe mem-0666 $(rw /dev/ep-mem-0666)"
if touch /etc/probe 2>/dev/null; then echo "probe etc writable"; else echo "probe etc read-only"; fi
if ls /root >/dev/null 2>&1 && [ -n "$(ls -A /root 2>/dev/null)" ]; then echo "probe home visible"; else echo "probe home hidden"; fi
me=$(id -u); other=0
for s in /proc/[0-9]*/status; do
	u=$(awk '$1 == "Uid:" {print $2}' "$s" 2>/dev/null)
	[ -n "$u" ] && [ "$u" != "$me" ] && other=$((other + 1))
done
[ "$other" = 0 ] && echo "probe proc own" || echo "probe proc others:$other"
[ -e /proc/meminfo ] && echo "probe meminfo visible" || echo "probe meminfo hidden"
echo "probe id $(id)"
