#!/bin/sh
# busybox udhcpc's event script in the pypasta test guest (see guest_init.sh): applies the lease.
#
# Installed as /usr/share/udhcpc/default.script, and as /etc/udhcpc/default.script, the path
# Debian's busybox looks for without `-s`. $1 is the event (deconfig, bound, renew, leasefail,
# nak); the lease comes in the environment: interface, ip, mask (prefix length), broadcast,
# router (a list: the first one becomes the default route), mtu (option 26), dns (a list),
# domain (option 15), search (option 119, a list) and staticroutes (option 121: "NET/LEN GW"...).
# resolv.conf gets the lease's nameservers and search list, keeping IPv6 nameservers that
# guest_udhcpc6.sh wrote. It prints one line saying what it applied, for the test's log.

RESOLV=/etc/resolv.conf
event=$1
dev=$interface

case $event in
deconfig)
    ip -4 addr flush dev "$dev"
    ip link set "$dev" up
    ;;
bound|renew)
    [ -n "$mtu" ] && ip link set dev "$dev" mtu "$mtu"
    if [ "$event" = bound ]; then
        ip -4 addr flush dev "$dev"
    fi
    ip addr replace "$ip/${mask:-32}" ${broadcast:+broadcast "$broadcast"} dev "$dev"
    # A router outside the subnet is reachable only with `onlink`.
    for r in $router; do
        ip route replace default via "$r" dev "$dev" 2>/dev/null \
            || ip route replace default via "$r" dev "$dev" onlink
        break
    done
    set -- $staticroutes
    while [ $# -ge 2 ]; do
        ip route replace "$1" via "$2" dev "$dev" 2>/dev/null \
            || ip route replace "$1" via "$2" dev "$dev" onlink
        shift 2
    done
    # IPv6 nameservers (from guest_udhcpc6.sh) stay; the search list is this lease's, if any.
    {
        if [ -n "$search" ]; then
            echo "search $search"
        elif [ -n "$domain" ]; then
            echo "search $domain"
        else
            grep '^search ' "$RESOLV" 2>/dev/null
        fi
        for d in $dns; do
            echo "nameserver $d"
        done
        grep '^nameserver .*:' "$RESOLV" 2>/dev/null
    } >"$RESOLV.new"
    mv "$RESOLV.new" "$RESOLV"
    echo "udhcpc: $event $dev $ip/${mask:-32} router ${router:--} mtu ${mtu:--} dns ${dns:--}" \
         "search ${search:-${domain:--}} staticroutes ${staticroutes:--}"
    ;;
leasefail|nak)
    echo "udhcpc: $event on $dev${message:+: $message}"
    ;;
esac
exit 0
