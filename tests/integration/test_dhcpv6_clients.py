"""DHCPv6 with real clients, in any order with DHCPv4 and SLAAC (issue 13, item 3).

The namespace is a fresh one (duplicate address detection on, as on any real system), so its
link-local address stays tentative for one to two seconds after the link comes up. ISC dhclient -6
binds that address and exits 1 ("Can't bind to dhcp address") while it is tentative. pasta sends a
Router Advertisement only when asked (the kernel solicits once its link-local address is usable;
pasta's first unsolicited RA comes 200 s or more after start), so "SLAAC has completed" implies a
usable link-local address. Every scenario here starts like the issue's: link up, wait for SLAAC
(the RA's default route and a SLAAC address), then run the clients as root in the namespace.

The clients run with Debian's own scripts (dhclient-script, dhcpcd-run-hooks), which configure
addresses and may write /etc/resolv.conf: each command first makes its (spawn-mode) mount
namespace private, mounts a tmpfs on /run (dhcpcd's pid files and sockets) and binds a file of the
workdir over /etc/resolv.conf and a directory over /var/lib/dhcpcd, so nothing outside the test
changes.

BusyBox udhcpc6 is not tested: Debian 12's busybox and busybox-static (1.35) are built without
it. dhcpcd (a second, independent DHCPv6 client) stands in for it.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from helpers.topology import Topology

SLAAC_WAIT = ("i=0; until ip -6 route show default proto ra | grep -q via && "
              "ip -6 addr show dev eth0 scope global dynamic | grep -q inet6; do i=$((i+1)); "
              "[ $i -gt 100 ] && echo slaac=timeout && exit 97; sleep 0.1; done; "
              "if ip -6 addr show dev eth0 scope link tentative | grep -q inet6; "
              "then echo ll=tentative; else echo ll=ready; fi")


def _prelude(t: Topology) -> str:
    """Private mounts for resolv.conf and dhcpcd's lease directory, then the link up."""
    resolv = os.path.join(t.workdir, "resolv.conf")
    leases = os.path.join(t.workdir, "dhcpcd-lib")
    open(resolv, "w").close()
    os.makedirs(leases, exist_ok=True)
    os.chmod(resolv, 0o666)
    os.chmod(leases, 0o777)
    return (f"mount --make-rprivate / && mount -t tmpfs tmpfs /run && "
            f"mount --bind {resolv} /etc/resolv.conf && "
            f"mount --bind {leases} /var/lib/dhcpcd && ip link set eth0 up && ")


def _dhclient(t: Topology, family: str) -> str:
    lease = os.path.join(t.workdir, f"dhclient{family}.leases")
    return (f"timeout 25 dhclient -{family} --no-pid -v -lf {lease} eth0 "
            f">{t.workdir}/dhclient{family}.log 2>&1; echo rc-dhclient{family}=$?")


def _run(t: Topology, user: str, body: str, *, slaac_first: bool = True):
    """Run the prelude (+ the SLAAC wait) + body in a pypasta namespace; (stdout, addr json)."""
    script = _prelude(t) + (SLAAC_WAIT + "; " if slaac_first else "") + body + \
        "; echo ----; ip -j addr show dev eth0"
    log = os.path.join(t.workdir, f"pypasta-{user}.log")
    r = t.pypasta_run(["-l", log, "--", "sh", "-c", script], user=user, timeout=90)
    out, _, addrs = r.stdout.partition("----")
    diag = f"{r.stdout}\n{r.stderr}\n" + "\n".join(
        f"--- {n}\n{open(os.path.join(t.workdir, n)).read()}"
        for n in sorted(os.listdir(t.workdir)) if n.endswith(".log"))
    assert r.returncode == 0, diag
    info = json.loads(addrs)[0]["addr_info"] if addrs.strip() else []
    return out, info, diag


def _has(info, local: str, prefixlen=None) -> bool:
    return any(a["local"] == local and (prefixlen is None or a["prefixlen"] == prefixlen)
               for a in info)


def _slaac_addr(info) -> bool:
    """A /64 address from the RA's prefix (the kernel's SLAAC marks it dynamic, dhcpcd's not)."""
    return any(a["local"].startswith("2001:db8::") and a["prefixlen"] == 64 for a in info)


def _dhclient_sequence(t: Topology, user: str, steps: list[str]) -> None:
    out, info, diag = _run(t, user, "; ".join(_dhclient(t, f) for f in steps))
    # An RA reaches the namespace only once it solicits one, i.e. with a usable link-local.
    assert "ll=ready" in out, diag
    for f in steps:
        assert f"rc-dhclient{f}=0" in out, diag
    assert _has(info, t.host_ip6, 128), diag
    assert _slaac_addr(info), diag
    if "4" in steps:
        assert _has(info, t.host_ip4, t.prefix4), diag


def test_dhclient4_then_dhclient6_after_slaac(topology, user):
    """The issue's sequence: SLAAC done, then dhclient -4, then dhclient -6; both exit 0."""
    _dhclient_sequence(topology, user, ["4", "6"])


@pytest.mark.parametrize("steps", [["6", "4"], ["6"]], ids=["6-then-4", "6-alone"])
def test_dhclient6_other_orders_after_slaac(topology, steps):
    """The reverse order, and DHCPv6 alone (pypasta's user changes nothing on the tap side)."""
    _dhclient_sequence(topology, "root", steps)


def test_dhclient6_races_slaac(topology):
    """DHCPv6 as soon as the link-local address is usable, while SLAAC runs."""
    t = topology
    ll_wait = ("i=0; until ip -6 addr show dev eth0 scope link | grep -q inet6 && "
               "! ip -6 addr show dev eth0 tentative | grep -q inet6; do i=$((i+1)); "
               "[ $i -gt 100 ] && echo ll=timeout && exit 97; sleep 0.05; done; ")
    body = ll_wait + _dhclient(t, "6") + "; " + SLAAC_WAIT + "; " + _dhclient(t, "4")
    out, info, diag = _run(t, "root", body, slaac_first=False)
    assert "rc-dhclient6=0" in out and "rc-dhclient4=0" in out, diag
    assert _has(info, t.host_ip6, 128) and _slaac_addr(info), diag
    assert _has(info, t.host_ip4, t.prefix4), diag


def test_dhcpcd6_after_slaac(topology, user):
    """dhcpcd -6: SLAAC and then DHCPv6, as the RA's managed flag asks."""
    if shutil.which("dhcpcd") is None:
        pytest.fail("dhcpcd is missing: run `bash tests/install-deps.sh` (package dhcpcd-base)",
                    pytrace=False)
    t = topology
    body = (f"timeout 25 dhcpcd -6 -1 -B -d -f /dev/null -t 20 eth0 >{t.workdir}/dhcpcd.log 2>&1;"
            " echo rc-dhcpcd=$?")
    out, info, diag = _run(t, user, body)
    assert "ll=ready" in out and "rc-dhcpcd=0" in out, diag
    assert _has(info, t.host_ip6, 128) and _slaac_addr(info), diag
