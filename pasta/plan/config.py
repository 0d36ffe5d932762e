"""Configuration: the frozen result of parsing a command line (or a front end's input).

Theory of operation: `pasta.front.conf.parse_args(argv, mode=...)` validates every option and
returns one `Config`. Nothing here touches the system; discovery of the host's template interface,
addresses and routes happens later (`pasta.setup.netlink.host_defaults`) and produces a `NetPlan` in
the supervisor.

Modes (`Config.mode`, passt's `enum passt_modes` without vhost-user):
- "pasta": a network namespace on the other end of a tap device (the defaults below).
- "passt": a virtual machine on the other end of a UNIX stream socket (`socket_path`, or the
  connected socket `tap_fd`). The parser then sets what passt mode implies: `no_splice` (no
  loopback bypass), `dhcp_dns`/`dhcp_search` on unless `--no-dhcp-dns`/`--no-dhcp-search` (the
  responders offer DNS and the search list), no `auto` rules, and no namespace fields (`command`,
  `netns`, `userns`, `pid_target` stay empty, `spawn` is False).

Invariants:
- Addresses are `ipaddress` objects, already validated (no loopback/unspecified/multicast where
  pasta rejects them).
- `None` means "not given on the command line; use the discovered or built-in default".
- Port forwards are stored as forwarding rules (`pasta.core.fwd_rule.FwdRule`, pasta 2026's
  `struct fwd_rule`), already parsed and checked against the option-derived capabilities;
  listening happens later.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Optional, Tuple, Union

MTU_DEFAULT = 65520
MAC_OUR_DEFAULT = "9a:55:9a:55:9a:55"
LOG_SIZE_DEFAULT = 1 << 20
LOG_SIZE_MIN = 40960
LOCAL_MODE_ADDR4 = ipaddress.IPv4Address("169.254.2.1")
LOCAL_MODE_GW4 = ipaddress.IPv4Address("169.254.2.2")
LOCAL_MODE_PREFIX4 = 16
LOCAL_MODE_GW6 = ipaddress.IPv6Address("fe80::1")
LOCAL_MODE_IFNAME = "tap0"
IFNAMSIZ = 16

IPv4 = ipaddress.IPv4Address
IPv6 = ipaddress.IPv6Address
IPAny = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


@dataclass(frozen=True)
class Config:
    # --- logging and process
    debug: bool = False
    trace: bool = False
    quiet: bool = False
    foreground: bool = False
    log_file: Optional[str] = None
    log_size: int = LOG_SIZE_DEFAULT
    runas: Optional[Tuple[int, int]] = None        # (uid, gid), resolved from names
    pcap: Optional[str] = None
    pid_file: Optional[str] = None
    tap_fd: Optional[int] = None                   # -F/--fd: pasta: a tap device; passt: a
    #                                                connected stream socket (implies one_off)
    no_seccomp: bool = False                       # --no-seccomp (debugging only)
    conf_path: Optional[str] = None                # -c/--conf-path: pesto control socket
    stats: Optional[int] = None                    # --stats DELAY (seconds; needs -f first)
    chroot_fallback: bool = False                  # --chroot-fallback
    hostname: Optional[str] = None                 # -H/--hostname: DHCP 12, UTS name (spawn)
    fqdn: Optional[str] = None                     # --fqdn: DHCP 81, DHCPv6 39
    splice_only: bool = False                      # --splice-only: no tap, loopback only

    # --- passt mode (module docstring)
    mode: str = "pasta"                            # "pasta" or "passt"
    socket_path: Optional[str] = None              # -s/--socket: listen here (None: probe
    #                                                /tmp/passt_N.socket, or use tap_fd)
    one_off: bool = False                          # -1/--one-off (or -F): exit when the client
    #                                                goes away

    # --- link
    mtu: int = MTU_DEFAULT                         # 0: do not advertise or set
    our_mac: str = MAC_OUR_DEFAULT                 # -M: our source MAC (libvirt 9.0 passes the
    #                                                guest's here in passt mode: still ours)
    ns_mac: Optional[str] = None                   # --ns-mac-addr
    ns_ifname: Optional[str] = None                # -I

    # --- addressing (None: discover from the template interface)
    addr4: Optional[IPv4] = None                   # -a (IPv4)
    prefix4: Optional[int] = None                  # -n
    addr6: Optional[IPv6] = None                   # -a (IPv6)
    prefix6: Optional[int] = None                  # -a ADDR/PREFIX (IPv6: parsed, not used, as pasta)
    gw4: Optional[IPv4] = None                     # -g (IPv4)
    gw6: Optional[IPv6] = None                     # -g (IPv6)
    template_if: Optional[str] = None              # -i
    outbound4: Optional[IPv4] = None               # -o (IPv4)
    outbound6: Optional[IPv6] = None               # -o (IPv6)
    outbound_if4: Optional[str] = None
    outbound_if6: Optional[str] = None
    ipv4: bool = True                              # cleared by -6
    ipv6: bool = True                              # cleared by -4

    # --- DNS
    dns: Tuple[IPAny, ...] = ()                    # -D, in order
    dns_none: bool = False                         # -D none (also clears dns-forward/host)
    search: Tuple[str, ...] = ()                   # -S
    search_none: bool = False
    dhcp_dns: bool = False                         # offer DNS servers (passt mode: default on)
    dhcp_search: bool = False                      # offer the search list (passt mode: on)
    dns_forward4: Optional[IPv4] = None
    dns_forward6: Optional[IPv6] = None
    dns_host4: Optional[IPv4] = None
    dns_host6: Optional[IPv6] = None

    # --- protocol switches
    no_tcp: bool = False
    no_udp: bool = False
    no_icmp: bool = False
    no_dhcp: bool = False
    no_ndp: bool = False
    no_dhcpv6: bool = False
    no_ra: bool = False
    freebind: bool = False

    # --- translation
    map_host_loopback4: Optional[IPv4] = None
    map_host_loopback6: Optional[IPv6] = None
    map_host_loopback_none: bool = False
    no_map_gw: bool = False
    map_guest_addr4: Optional[IPv4] = None
    map_guest_addr6: Optional[IPv6] = None
    no_splice: bool = False
    host_lo_to_ns_lo: bool = False

    # --- destinations the namespace cannot reach (front ends only; pasta has no such option):
    # frames to `unreachable` get an ICMP/ICMPv6 "network unreachable" back, frames to
    # `blackhole` are dropped (slirp4netns's --disable-host-loopback and --disable-dns).
    unreachable: Tuple[IPAny, ...] = ()
    blackhole: Tuple[IPAny, ...] = ()
    # libslirp's aliases (front ends only): every other address of this IPv4 network is the
    # host's loopback (or, listed in `unreachable_net4`, unreachable), except the DNS address.
    alias_net4: Optional[ipaddress.IPv4Network] = None
    unreachable_net4: bool = False

    # --- port forwarding: the rules of -t/-u (pif HOST) and -T/-U (pif SPLICE), as
    # `pasta.core.fwd_rule.FwdRule`s (typed loosely: plan sits below core), in the order pasta
    # adds them, the `auto` of an option not given included; `fwd_table(caps, fwd_rules)`
    # rebuilds pasta's tables. Empty: nothing forwarded.
    fwd_rules: Tuple[object, ...] = ()
    # -u listeners set SO_REUSEADDR (pasta); slirp4netns's API forwards do not, so that a
    # busy UDP port is refused
    udp_reuseaddr: bool = True

    # --- namespaces and mode
    userns: Optional[str] = None
    netns: Optional[str] = None                    # resolved path (NAME -> /run/netns/NAME)
    netns_only: bool = False
    no_netns_quit: bool = False
    config_net: bool = False
    no_copy_routes: bool = False
    no_copy_addrs: bool = False
    pid_target: Optional[int] = None               # PID form
    command: Tuple[str, ...] = ()                  # spawn form (empty: login shell)

    # Options given explicitly, by canonical long name, for diagnostics and "not supported yet".
    given: frozenset = field(default_factory=frozenset)

    # Warnings found while parsing (deprecated options...), to be logged once logging is set up:
    # parsing itself prints nothing.
    warnings: Tuple[str, ...] = ()

    @property
    def spawn(self) -> bool:
        """True when pypasta creates the namespaces and runs a command (not attaching); never
        in passt mode, which has no namespace."""
        return self.mode == "pasta" and self.pid_target is None and self.netns is None
