#!/bin/sh
# DHCPv6 event script in the pypasta test guest: applies what `guestnet dhcp6` obtained.
#
# Installed as /usr/share/udhcpc/default6.script. Debian 12's busybox has no udhcpc6, so
# guestnet.c's DHCPv6 client runs this with the environment udhcpc6 would give: $1 the event
# (bound), interface, ipv6 (the IA_NA address), dns (a list) and search (a list). The address
# goes on as a /128 (the prefix comes from router advertisements); resolv.conf keeps its IPv4
# nameservers and search domains and gains these. Prints one line saying what it applied.

RESOLV=/etc/resolv.conf
event=$1
dev=$interface

case $event in
bound|renew)
    ip -6 addr replace "$ipv6/128" dev "$dev" || exit 1
    old_search=$(sed -n 's/^search //p' "$RESOLV" 2>/dev/null)
    all_search=
    for d in $old_search $search; do
        case " $all_search " in *" $d "*) ;; *) all_search="${all_search:+$all_search }$d" ;; esac
    done
    {
        [ -n "$all_search" ] && echo "search $all_search"
        grep '^nameserver [^:]*$' "$RESOLV" 2>/dev/null
        for d in $dns; do
            echo "nameserver $d"
        done
    } >"$RESOLV.new"
    mv "$RESOLV.new" "$RESOLV"
    echo "dhcp6: $event $dev $ipv6/128 dns ${dns:--} search ${search:--}"
    ;;
esac
exit 0
