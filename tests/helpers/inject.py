"""Inject random and mutated Ethernet frames into pypasta's tap, from inside the namespace.

Purpose: the load of the issue 3 integration test: a million hostile frames (tests/helpers/
fuzzframes.py) sent into the tap pypasta serves, paced so that the tap never overflows, while the
test watches that pypasta stays up, counts the drops and keeps its memory flat.

Invocation: run it as a script, by path, with the tests' interpreter (`sys.executable`), inside
the namespace's network namespace, with CAP_NET_RAW over it (AF_PACKET); no PYTHONPATH is needed,
since the script's own directory (tests/helpers, which holds fuzzframes.py) is first on sys.path:

    nsenter --net=/proc/PID/ns/net python3 tests/helpers/inject.py --ifname tap0 \\
        --count 1000000 --seed 1 --sync-every 500 --our-mac 9a:55:9a:55:9a:55 \\
        --probe-ip 198.51.100.77

Real root entering only the network namespace is enough, for a rootless pypasta too: root of the
initial user namespace holds CAP_NET_RAW over every network namespace. (`python3 -m
helpers.inject ...` from tests/ works too.) Only the standard library and fuzzframes.py are
used, so the two files can be copied anywhere readable and run by any Python >= 3.9; the frames
for a seed are the same for one Python version. Importing this module has no side effects;
`main(argv)` runs it.

Theory of operation:
- One AF_PACKET SOCK_RAW socket, bound to --ifname with protocol ETH_P_ARP: it sends the fuzz
  frames and receives only *incoming* ARP frames (frames the namespace sends are delivered to
  ETH_P_ALL sockets only), i.e. pypasta's ARP replies. PACKET_QDISC_BYPASS is set (unless
  --no-qdisc-bypass), so frames go straight to the tap's queue in send order whatever qdisc the
  interface has; the price is that tcpdump inside the namespace does not see them.
- Frames come from `fuzzframes.FrameSource(--seed, templates(...))`; the template addresses
  default to the integration topology's (tests/helpers/topology.py), the guest MAC to the
  interface's own MAC and the guest link-local address to its EUI-64 address. Sends refused
  with ENOBUFS, EMSGSIZE or EINVAL are counted and skipped (frames shorter than 14 bytes or
  longer than the MTU, a full queue); any other send error ends the run (exit 1), e.g. ENXIO
  or ENODEV when the tap disappears because pypasta died.
- Pacing: after every --sync-every frames, and once at the end, the injector sends an ARP
  request from the interface's MAC and --sender-ip asking who-has --probe-ip, and waits up to
  --sync-timeout seconds for the matching reply from --our-mac (sender = our MAC and probe IP,
  target = the interface's MAC and sender IP). The tap queue is FIFO and pypasta reads it in
  order, so the reply proves every frame sent before the probe was consumed, and at most
  --sync-every + 1 frames are ever queued (the tap's queue holds 1000: keep --sync-every well
  below that). No reply in time: a message on stderr, exit 1. ARP replies to fuzz frames are
  drained (and ignored) while sending, so they cannot fill the socket's receive buffer.
- Output on stdout (flushed): `progress N` after every --report-every frames, then
  `done N sent, E send errors`, exit 0. N counts send calls (fuzz frames handed to the kernel, so
  N equals --count on success), E those refused; probes are not counted. A summary of frame
  kinds, errors by errno and the rate goes to stderr.

Limits: the probe needs pypasta's ARP responder (IPv4 enabled, --probe-ip not the namespace's own
address); frames above the interface MTU + 14 are refused by the kernel (pypasta's tap MTU is
65520 by default, so all fuzz frames, at most 9014 bytes, go through); frames below 14 bytes
(about 2% of the mix) are always refused with EINVAL (an Ethernet device's min_header_len), so
pypasta never sees a frame shorter than its Ethernet header from this tool.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import select
import socket
import struct
import sys
import time

try:
    from . import fuzzframes
except ImportError:             # run as a script: tests/helpers is sys.path[0]
    import fuzzframes

ETH_P_ARP = 0x0806
SOL_PACKET = 263
PACKET_QDISC_BYPASS = 20
RCVBUF_BYTES = 4 << 20
DRAIN_EVERY = 64                 # sends between two non-blocking drains of ARP replies
IGNORED_ERRNOS = frozenset((errno.ENOBUFS, errno.EMSGSIZE, errno.EINVAL))
ARP_REQUEST, ARP_REPLY = 1, 2
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_BCAST = b"\xff" * 6


class InjectError(Exception):
    """A reason to stop: printed as `inject: <message>`, exit status 1."""


def eui64_link_local(mac: bytes) -> str:
    """The link-local address the kernel derives from `mac` (RFC 4291 appendix A)."""
    iid = bytes([mac[0] ^ 0x02, mac[1], mac[2], 0xFF, 0xFE, mac[3], mac[4], mac[5]])
    return str(ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + iid))


def mac_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def arp_probe(src_mac: bytes, sender_ip: bytes, probe_ip: bytes) -> bytes:
    """The broadcast ARP request `who-has probe_ip tell sender_ip`."""
    return (_BCAST + src_mac + struct.pack("!H", ETH_P_ARP)
            + _ARP.pack(1, 0x0800, 6, 4, ARP_REQUEST, src_mac, sender_ip, bytes(6), probe_ip))


def is_probe_reply(frame: bytes, our_mac: bytes, my_mac: bytes, sender_ip: bytes,
                   probe_ip: bytes) -> bool:
    """Whether `frame` is pypasta's reply to `arp_probe(my_mac, sender_ip, probe_ip)`."""
    if len(frame) < 42 or frame[6:12] != our_mac or frame[12:14] != b"\x08\x06":
        return False
    _ht, _pt, _hl, _pl, op, sha, spa, tha, tpa = _ARP.unpack_from(frame, 14)
    return (op == ARP_REPLY and sha == our_mac and spa == probe_ip and tha == my_mac
            and tpa == sender_ip)


class Injector:
    """The socket, the frame source and the counters of one run."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        except OSError as exc:
            raise InjectError(f"cannot open an AF_PACKET socket: {exc.strerror} (run as root "
                              f"of the namespace)") from None
        try:
            self.sock.bind((args.ifname, ETH_P_ARP))
        except OSError as exc:
            self.sock.close()
            raise InjectError(f"cannot bind to {args.ifname}: {exc.strerror}") from None
        self.my_mac = self.sock.getsockname()[4][:6]
        if not args.no_qdisc_bypass:
            self.sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        for opt in (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, opt, RCVBUF_BYTES)
                break
            except (OSError, TypeError):        # FORCE needs CAP_NET_ADMIN in the init userns
                continue
        self.our_mac = bytes.fromhex(args.our_mac.replace(":", ""))
        self.sender_ip = ipaddress.IPv4Address(args.sender_ip).packed
        self.probe_ip = ipaddress.IPv4Address(args.probe_ip).packed
        self.probe = arp_probe(self.my_mac, self.sender_ip, self.probe_ip)
        guest_mac = args.guest_mac or mac_str(self.my_mac)
        tmpl = fuzzframes.templates(
            our_mac=args.our_mac, guest_mac=guest_mac, guest4=args.guest4, gw4=args.gw4,
            peer4=args.peer4, guest6=args.guest6,
            guest_ll6=args.guest_ll6 or eui64_link_local(bytes.fromhex(guest_mac.replace(":", ""))),
            gw_ll6=args.gw_ll6, peer6=args.peer6)
        self.source = fuzzframes.FrameSource(args.seed, tmpl, args.mix)
        self.sent = 0
        self.errors: dict[int, int] = {}
        self.syncs = 0

    def close(self) -> None:
        self.sock.close()

    def drain(self) -> None:
        """Discard the ARP frames queued so far (replies to fuzz frames, stale replies)."""
        recv = self.sock.recv
        while True:
            try:
                recv(2048, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return

    def sync(self) -> None:
        """Send the ARP probe and wait for pypasta's reply (InjectError after the timeout)."""
        self.drain()
        self._send_or_fail(self.probe, "the ARP probe")
        deadline = time.monotonic() + self.args.sync_timeout
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise InjectError(
                    f"no ARP reply from {self.args.our_mac} for {self.args.probe_ip} within "
                    f"{self.args.sync_timeout:g} s after {self.sent} frames on {self.args.ifname}"
                    f" (pypasta stuck, dead, or not answering ARP)")
            if not poller.poll(max(1, int(left * 1000))):
                continue
            try:
                frame = self.sock.recv(2048, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                continue
            if is_probe_reply(frame, self.our_mac, self.my_mac, self.sender_ip, self.probe_ip):
                self.syncs += 1
                return

    def _send_or_fail(self, frame: bytes, what: str) -> None:
        try:
            self.sock.send(frame)
        except OSError as exc:
            raise InjectError(f"sending {what} on {self.args.ifname} failed after {self.sent} "
                              f"frames: {exc}") from None

    def run(self) -> None:
        args = self.args
        send, nxt, errors = self.sock.send, self.source.next, self.errors
        sync_every, report_every = args.sync_every, args.report_every
        for i in range(1, args.count + 1):
            frame = nxt()
            try:
                send(frame)
            except OSError as exc:
                if exc.errno not in IGNORED_ERRNOS:
                    raise InjectError(f"send on {args.ifname} failed after {i - 1} frames "
                                      f"({len(frame)}-byte frame): {exc}") from None
                errors[exc.errno] = errors.get(exc.errno, 0) + 1
            self.sent = i
            if sync_every and i % sync_every == 0:
                self.sync()
            elif i % DRAIN_EVERY == 0:
                self.drain()
            if report_every and i % report_every == 0:
                print(f"progress {i}", flush=True)
        if not sync_every or args.count % sync_every:
            self.sync()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ex = fuzzframes.EXAMPLE_ADDRS
    p = argparse.ArgumentParser(prog="inject.py", description=(
        "Send random and mutated Ethernet frames into an interface with AF_PACKET, pacing with "
        "ARP probes answered by pypasta."))
    p.add_argument("--ifname", required=True, help="the tap interface pypasta serves")
    p.add_argument("--count", type=int, default=1_000_000, help="fuzz frames to send (1000000)")
    p.add_argument("--seed", type=int, default=1, help="FrameSource seed (1)")
    p.add_argument("--sync-every", type=int, default=500,
                   help="frames between ARP probes, 0 for none but the last (500)")
    p.add_argument("--sync-timeout", type=float, default=5.0,
                   help="seconds to wait for each probe's reply (5)")
    p.add_argument("--report-every", type=int, default=100_000,
                   help="frames between `progress N` lines, 0 for none (100000)")
    p.add_argument("--our-mac", default=ex["our_mac"], help="pypasta's MAC (9a:55:9a:55:9a:55)")
    p.add_argument("--probe-ip", default="198.51.100.77",
                   help="the IPv4 address the probes ask for (198.51.100.77); "
                        "not the namespace's own address")
    p.add_argument("--sender-ip", default="0.0.0.0",
                   help="sender IPv4 address of the probes (0.0.0.0: an ARP probe, RFC 5227)")
    p.add_argument("--guest-mac", help="source MAC of templates (default: the interface's)")
    p.add_argument("--guest-ll6", help="the namespace's link-local address "
                   "(default: EUI-64 of the guest MAC)")
    for name in ("guest4", "gw4", "peer4", "guest6", "gw_ll6", "peer6"):
        p.add_argument("--" + name.replace("_", "-"), default=ex[name],
                       help=f"template address ({ex[name]})")
    p.add_argument("--mix", type=_mix, default=None,
                   help="kind weights, e.g. mutate=3,random=1 (default: fuzzframes.DEFAULT_WEIGHTS;"
                        f" kinds: {', '.join(fuzzframes.KINDS)})")
    p.add_argument("--no-qdisc-bypass", action="store_true",
                   help="send through the interface's qdisc (tcpdump then sees the frames, "
                        "but a reordering qdisc breaks the pacing)")
    args = p.parse_args(argv)
    if args.count < 0 or args.sync_every < 0 or args.report_every < 0:
        p.error("--count, --sync-every and --report-every must be >= 0")
    if args.sync_timeout <= 0:
        p.error("--sync-timeout must be > 0")
    if args.probe_ip == args.guest4:
        p.error("--probe-ip must not be the namespace's own address: pypasta does not answer it")
    return args


def _mix(text: str) -> dict[str, int]:
    try:
        mix = {k.strip(): int(v) for k, v in (item.split("=") for item in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"not KIND=WEIGHT[,...]: {text!r}") from None
    if set(mix) - set(fuzzframes.KINDS):
        unknown = sorted(set(mix) - set(fuzzframes.KINDS))
        raise argparse.ArgumentTypeError(f"unknown kinds {unknown}")
    return mix


def main(argv: list[str] | None = None) -> int:
    """Run the injector; returns the exit status."""
    args = parse_args(argv)
    t0 = time.monotonic()
    try:
        inj = Injector(args)
    except (InjectError, ValueError) as exc:
        print(f"inject: {exc}", file=sys.stderr)
        return 1
    try:
        inj.run()
    except (InjectError, OSError) as exc:
        print(f"inject: {exc}", file=sys.stderr)
        return 1
    finally:
        inj.close()
    elapsed = time.monotonic() - t0
    nerr = sum(inj.errors.values())
    print(f"done {inj.sent} sent, {nerr} send errors", flush=True)
    by_errno = ", ".join(f"{errno.errorcode.get(e, e)} {n}" for e, n in sorted(inj.errors.items()))
    kinds = ", ".join(f"{k} {n}" for k, n in inj.source.counts.items())
    print(f"inject: {inj.sent} frames in {elapsed:.1f} s ({inj.sent / max(elapsed, 1e-9):.0f}/s), "
          f"{inj.syncs} syncs; kinds: {kinds}; send errors: {by_errno or 'none'}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
