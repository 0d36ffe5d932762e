#!/bin/sh
# /init of the pypasta test guest: a busybox initramfs driven by tests/helpers/guest.py.
#
# tests/install-deps.sh (step 8) copies this file into /var/cache/pypasta-test/guest/initramfs.cpio
# as /init, next to a static busybox with its applet links, the virtio-net modules in /lib/modules
# (loaded in the order of /lib/modules/order) and the udhcpc script (guest_udhcpc.sh). A change
# here changes that step's stamp, so the next install-deps.sh run rebuilds the initramfs.
#
# Console and kernel messages: ttyS0 (`console=ttyS0`, a log file on the host). Command channel:
# ttyS1, raw mode, no echo. It is a request/reply protocol, one command at a time:
#
#   guest -> host  __PYPASTA_GUEST_READY__ UPTIME    once, when the channel is ready
#   host -> guest  ID LIMIT BASE64\n                 ID: lower-case hex chosen by the host,
#                                                    LIMIT: seconds (whole, >= 1),
#                                                    BASE64: the command (one line, no wrap)
#   guest -> host  __OUT__ ID NBYTES\n               then exactly NBYTES bytes: the command's
#                  <NBYTES bytes of stdout+stderr>   stdout and stderr, interleaved as written
#                  __END__ ID RC\n                   RC: its exit status (137: killed at LIMIT)
#
# The output is length-framed and the markers carry the host's fresh ID, so nothing a command
# prints can pass for a marker. Lines that do not parse (an ID that is not hex) are ignored. The
# command runs as `sh FILE` under `timeout -s KILL LIMIT`, with stdin /dev/null and cwd /root; its
# output is collected in a file, so a command that starts `server >LOG 2>&1 &` returns at once and
# the server keeps running (PID 1, this shell, reaps it when it ends).
#
# This script is PID 1: it must never exit (the kernel would panic), so every failure is reported
# on the console and the loop goes on; if the channel cannot be opened, or ends, it powers off.

PATH=/usr/sbin:/usr/bin:/sbin:/bin
HOME=/root
export PATH HOME

mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/null >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mkdir -p /dev/pts /dev/shm /tmp /run /root
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
hostname guest

for m in $(cat /lib/modules/order); do
    insmod "/lib/modules/$m.ko" || echo "guest: insmod $m failed"
done
ip link set lo up
[ -e /sys/class/net/eth0 ] && ip link set eth0 up

CH=/dev/ttyS1
CHDIR=/run/channel
mkdir -p "$CHDIR"
cd /root || cd /

# The command loop. It runs in a child of PID 1, never in PID 1 itself: orphans (servers started
# with `&`, the watchers `timeout` leaves behind) are reparented to PID 1, and when a SIGCHLD
# interrupts busybox ash's `read` while it waits for the rest of a line, `read` starts again from
# an empty line and what it had read is lost (seen: one test run in ten lost a command). The
# loop's own children have all been waited for before it reads again, so no SIGCHLD reaches it
# there; PID 1 waits for the loop and reaps the orphans meanwhile.
serve() {
    if ! [ -c "$CH" ] || ! exec 3<>"$CH" || ! stty raw -echo clocal <&3; then
        echo "guest: cannot open the command channel $CH"
        return 1
    fi
    echo "__PYPASTA_GUEST_READY__ $(cut -d' ' -f1 /proc/uptime)" >&3
    while IFS=' ' read -r id limit cmd <&3; do
        case $id in
            ''|*[!0-9a-f]*) echo "guest: ignored a line that is not a command"; continue ;;
        esac
        case $limit in ''|*[!0-9]*) limit=60 ;; esac
        f=$CHDIR/$id
        printf '%s\n' "$cmd" | base64 -d >"$f.sh"
        timeout -s KILL "$limit" sh "$f.sh" </dev/null >"$f.out" 2>&1
        rc=$?
        printf '__OUT__ %s %s\n' "$id" "$(stat -c %s "$f.out")" >&3
        cat "$f.out" >&3
        printf '__END__ %s %s\n' "$id" "$rc" >&3
        rm -f "$f.sh" "$f.out"
    done
    echo "guest: end of file on the command channel"
}

(serve)
echo "guest: the command channel is gone; powering off"
poweroff -f
