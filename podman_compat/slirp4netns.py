"""`pypasta-slirp4netns`: a drop-in slirp4netns for Podman and RootlessKit, on pypasta's translator.

Purpose: tools that drive slirp4netns (Podman's `--network slirp4netns` and its rootless-netns,
RootlessKit's `--net=slirp4netns`) get pypasta by pointing their helper path at this command and
changing nothing else (real-clients.md sections 1-2).

Theory of operation:
- `slirp4netns_cli.main_parse` does the command line exactly as slirp4netns 1.2.0 (messages,
  exit codes, `--help`, `--version`). `to_config()` turns the options into a pasta `Config` for
  the attach mode: target PID (joining its user namespace, as slirp4netns) or `--netns-type=path`
  with `--userns-path`; the tap named TAPNAME, created in the namespace or adopted if it already
  exists (RootlessKit creates a persistent tap0 first); no port forwarding until the API asks.
- Addressing is libslirp's, on the translator: the guest is cidr+100/prefix with gateway cidr+2
  (set on the tap with `-c`, offered by DHCP either way); cidr+2 is the host's loopback unless
  `--disable-host-loopback`, in which case new connections to it get ICMP "network unreachable"
  (as slirp4netns: "Network is unreachable" in the namespace); cidr+3 forwards DNS to the
  host's resolver unless `--disable-dns`, in which case it is a black hole (queries time out).
  Like libslirp, every other address of the virtual network is an alias of the host's
  loopback too (or unreachable with `--disable-host-loopback`), never an address on the
  host's own networks.
  `--enable-ipv6`: router advertisements for fd00::/64 from fe80::2, with fd00::2 and fd00::3
  playing the same parts.
- The process contract: it stays in the foreground; stdout gets slirp4netns's "Starting slirp"
  block; once the tap is configured, the translator exists, the API socket listens and the
  process is confined, `1` is written to `--ready-fd` and that fd closed;
  a hang-up or EOF on `--exit-fd` ends it with status 0; SIGTERM ends it with status 0, and a
  SIGKILL leaves nothing to clean up (the tap is the namespace's, the API socket file is
  replaced at the next start).
- API socket (`--api-socket`): one more fd kind in the engine. Each connection's request is read
  until EOF, a complete JSON value or `api.MAX_REQUEST_SIZE` bytes, answered by
  `api.handle_request` and closed. Forwards are rules of the translator's forwarding table
  (`pasta.core.fwd_rule`, HOST pif), added and removed with `FwdListen.replace()`: ordinary
  `-t`/`-u` listeners (UDP ones without SO_REUSEADDR), so clients keep their real source
  address and UDP replies work even with `--disable-host-loopback` (slirp4netns drops them).

Confinement: every run is confined after set-up as pypasta is (`pasta.setup.isolation`): an
empty root where slirp4netns's `--enable-sandbox` keeps /etc and /run, no capability but
CAP_NET_BIND_SERVICE, no_new_privs and a seccomp allow-list. `--enable-sandbox` and
`--enable-seccomp` are accepted as slirp4netns's and change nothing more, except that
`--enable-seccomp` prints slirp4netns's line naming the syscalls it blocks (all refused here).

Limits and not handled: `--target-type=bess` (refused: not supported yet). Loopback clients of
API forwards go through the tap (the namespace sees them from cidr+2), not through splice(2),
as in slirp4netns.

Differences from slirp4netns: it also exits when the target process or netns file goes away;
the API socket file is left behind at exit (a confined process cannot reach it), and a stale
one, left by any earlier helper, is replaced instead of failing with EADDRINUSE.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import stat
import sys

from pasta.core.fwd_rule import IPPROTO_TCP, IPPROTO_UDP, PIF_HOST, FwdRule, fwd_rule_add
from podman_compat import api, slirp4netns_cli as cli

IPV6_GUEST = ipaddress.IPv6Address("fd00::100")
IPV6_ROUTER_LL = ipaddress.IPv6Address("fe80::2")
IPV6_HOST = ipaddress.IPv6Address("fd00::2")
IPV6_DNS = ipaddress.IPv6Address("fd00::3")
API_READ_TIMEOUT_S = 5.0
API_MAX_CONNS = 16


def to_config(o: "cli.SlirpOptions", resolv_conf: str | None = None):
    """The pasta Config that runs slirp4netns's options on the translator.

    `resolv_conf`: the host's resolv.conf text (read here if None): its first nameserver of
    each family is where queries to the DNS address go, as libslirp's get_dns_addr()."""
    from pasta.plan import config as C, linkctx
    from pasta.shell.translator import read_resolv_conf
    servers, _ = linkctx.parse_resolv_conf(read_resolv_conf() if resolv_conf is None
                                           else resolv_conf)
    host4 = next((a for a in servers if a.version == 4), None)
    host6 = next((a for a in servers if a.version == 6), None)
    kw = dict(
        foreground=True, quiet=True,
        mtu=o.mtu, ns_ifname=o.tapname, ns_mac=o.macaddress,
        addr4=o.guest_addr, prefix4=o.network.prefixlen, gw4=o.gateway,
        config_net=o.configure, no_copy_routes=True, no_copy_addrs=True,
        ipv6=o.enable_ipv6,
        outbound4=o.outbound_addr, outbound6=o.outbound_addr6,
        fwd_rules=(), udp_reuseaddr=False,        # forwards come from the API only
        no_splice=True,
        map_host_loopback_none=True, no_map_gw=True,
    )
    unreachable, blackhole, dns = [], [], []
    if o.disable_host_loopback:
        unreachable.append(o.gateway)
    else:
        kw["map_host_loopback4"] = o.gateway
        kw["map_host_loopback_none"] = False
    if o.disable_dns:
        blackhole.append(o.dns)
    else:
        kw["dns_forward4"] = o.dns
        kw["dns_host4"] = host4
        dns.append(o.dns)
    if o.enable_ipv6:
        kw.update(addr6=IPV6_GUEST, gw6=IPV6_ROUTER_LL)
        if o.disable_host_loopback:
            unreachable.append(IPV6_HOST)
        else:
            kw["map_host_loopback6"] = IPV6_HOST
        if o.disable_dns:
            blackhole.append(IPV6_DNS)
        else:
            kw["dns_forward6"] = IPV6_DNS
            kw["dns_host6"] = host6
            dns.append(IPV6_DNS)
    kw.update(unreachable=tuple(unreachable), blackhole=tuple(blackhole), dns=tuple(dns),
              dns_none=not dns, alias_net4=o.network,
              unreachable_net4=o.disable_host_loopback)
    if o.netns_mode == "pid":
        kw["pid_target"] = o.target_pid
        kw["userns"] = o.userns_path
    else:
        kw["netns"] = o.netns_path
        kw["userns"] = o.userns_path
        kw["netns_only"] = o.userns_path is None
    return C.Config(**kw)


class Backend:
    """`api.HostFwdBackend` on the translator: each API forward is one rule of its forwarding
    table (HOST pif, the listening address as given, IPv4 only), added and removed with
    `FwdListen.replace()`, so a refused bind leaves the table as it was."""

    def __init__(self, translator, guest_addr):
        self.translator = translator
        self.guest_addr = guest_addr
        self.rules: dict = {}

    def add_hostfwd(self, proto, host_addr, host_port, guest_addr, guest_port) -> None:
        if guest_addr != self.guest_addr:
            raise api.HostFwdRefused(f"only the guest address {self.guest_addr} can be reached")
        key = (proto, host_addr, host_port)
        if key in self.rules:
            raise api.HostFwdRefused("already forwarded")
        fwd = self.translator.fwd
        rule = FwdRule(PIF_HOST, IPPROTO_TCP if proto == "tcp" else IPPROTO_UDP,
                       host_port, host_port, guest_port, host_addr)
        fwd.replace(fwd_rule_add(fwd.table, rule))
        self.rules[key] = rule

    def remove_hostfwd(self, proto, host_addr, host_port) -> None:
        fwd = self.translator.fwd
        rule = self.rules[(proto, host_addr, host_port)]
        fwd.replace(fwd.table.without(rule))
        del self.rules[(proto, host_addr, host_port)]


class ApiServer:
    """The `--api-socket` listener and its connections, as engine handlers. Nothing here
    blocks the loop: requests are read and replies written as the sockets allow, a client
    gets API_READ_TIMEOUT_S for the whole exchange, and at most API_MAX_CONNS are open."""

    def __init__(self, engine, path: str, table: "api.HostFwdTable", backend: Backend):
        self.engine, self.path, self.table, self.backend = engine, path, table, backend
        _replace_stale_socket(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK
                                  | socket.SOCK_CLOEXEC)
        try:
            self.sock.bind(path)
            self.sock.listen(16)
        except OSError as e:
            self.sock.close()
            raise OSError(e.errno, f"{path}: {e.strerror}") from None
        self.conns: dict = {}               # fd -> [socket, request bytes, reply left, timer]
        self.listening = False
        self._listen(True)

    def _listen(self, on: bool) -> None:
        from pasta.shell.engine import FdKind         # (the engine is loaded by now)
        if on and not self.listening:
            self.engine.add(self.sock.fileno(), 1, self._accept, FdKind.CONTROL_LISTEN)
        elif not on and self.listening:
            self.engine.remove(self.sock.fileno())
        self.listening = on

    def _accept(self, _ev: int) -> None:
        from pasta.shell.engine import FdKind
        while len(self.conns) < API_MAX_CONNS:
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # Out of fds (EMFILE, ENFILE...): stop accepting for a moment instead of
                # spinning on a listener that stays readable.
                self._listen(False)
                self.engine.call_later(0.1, lambda: self._listen(True))
                return
            conn.setblocking(False)
            fd = conn.fileno()
            timer = self.engine.call_later(API_READ_TIMEOUT_S, lambda fd=fd: self._done(fd))
            self.conns[fd] = [conn, bytearray(), None, timer]
            self.engine.add(fd, 1, lambda ev, fd=fd: self._event(fd), FdKind.CONTROL)
        self._listen(False)                 # at the cap: resumed when one finishes

    def _event(self, fd: int) -> None:
        item = self.conns.get(fd)
        if item is None:
            return
        if item[2] is None:
            self._read(fd, item)
        else:
            self._write(fd, item)

    def _read(self, fd: int, item) -> None:
        conn, buf = item[0], item[1]
        try:
            chunk = conn.recv(api.MAX_REQUEST_SIZE - len(buf))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._done(fd)
            return
        buf += chunk
        if chunk and len(buf) < api.MAX_REQUEST_SIZE and not api.request_complete(bytes(buf)):
            return
        item[2] = memoryview(api.handle_request(bytes(buf), self.backend, self.table))
        self.engine.modify(fd, 4)           # EPOLLOUT: the reply goes out as room allows
        self._write(fd, item)

    def _write(self, fd: int, item) -> None:
        conn, left = item[0], item[2]
        try:
            sent = conn.send(left)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._done(fd)
            return
        item[2] = left = left[sent:]
        if not left:
            try:
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self._done(fd)

    def _done(self, fd: int) -> None:
        item = self.conns.pop(fd, None)
        if item is None:
            return
        conn, timer = item[0], item[3]
        timer.cancel()
        self.engine.remove(fd)
        conn.close()
        if not self.listening:
            self._listen(True)

    def close(self) -> None:
        for fd in list(self.conns):
            self._done(fd)
        self._listen(False)
        self.sock.close()
        # The socket file stays: the confined process cannot reach its path (it has an empty
        # root); the next start replaces it (_replace_stale_socket).


def _replace_stale_socket(path: str) -> None:
    """Unlink a socket file nobody listens on (a helper that was killed); a live one stays and
    the bind fails, as slirp4netns's does."""
    try:
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            return
    except FileNotFoundError:
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)
    except OSError:
        pass
    finally:
        probe.close()


def _say(text: str, stream=None) -> None:
    """A line on stdout (Podman's log file, RootlessKit's pipe) that may fail: never fatal."""
    try:
        print(text, file=stream or sys.stdout, flush=True)
    except (OSError, ValueError):
        pass


def _signal_ready(fd: int) -> None:
    try:
        os.write(fd, b"1")
    except OSError:
        pass
    os.close(fd)


def interface_addr(name: str, family: int):
    """First address of interface `name` (family 4 or 6) in this netns, for
    `--outbound-addr=IFNAME` as slirp4netns resolves it (getifaddrs); None if it has none."""
    from pasta.plan import netplan
    from pasta.setup import netlink
    try:
        snap = netlink.host_snapshot()
    except Exception:                   # noqa: BLE001 - reported as "not an address or name"
        return None
    fam = netplan.AF_INET if family == 4 else netplan.AF_INET6
    index = next((link.index for link in snap.links if link.name == name), None)
    for a in snap.addrs:
        if a.index == index and a.family == fam:
            return a.address
    return None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    opts = cli.main_parse(argv, "slirp4netns", interface_addr=interface_addr)
    if isinstance(opts, int):
        return opts
    # Everything is imported now: once confined the Python installation is out of sight.
    from pasta.setup import supervisor
    from pasta.util.errors import PastaError, NotSupportedYet
    from pasta.setup import isolation as sandbox
    import encodings.idna  # noqa: F401 - used by socket calls with host names, lazily
    try:
        if opts.target_type != "netns":
            raise NotSupportedYet("--target-type=bess")
        cfg = to_config(opts)
        state = {}

        def on_ready(engine, translator) -> None:
            _say(opts.banner().rstrip("\n"))
            if opts.exit_fd is not None:
                def exit_event(_ev: int) -> None:
                    engine.remove(opts.exit_fd)
                    engine.stop(0)
                    _say("exitfd event")
                from pasta.shell.engine import FdKind
                engine.add(opts.exit_fd, 1, exit_event, FdKind.EXIT)
            if opts.api_socket is not None:
                backend = Backend(translator, opts.guest_addr)
                state["api"] = ApiServer(engine, opts.api_socket,
                                         api.HostFwdTable(opts.guest_addr), backend)

        def on_confined() -> None:
            # The confinement (pasta.setup.isolation) is always on: --enable-sandbox asks for
            # part of it, --enable-seccomp for a filter that blocks slirp4netns's list, which
            # the allow-list does (the line is what slirp4netns prints).
            if opts.enable_seccomp:
                arch = sandbox.host_arch()
                missing = sandbox.unmapped_blocked(arch)
                _say(sandbox.blocked_message(n for n in sandbox.BLOCKED_SYSCALLS
                                             if n not in missing))
                if missing:
                    _say(sandbox.unmapped_message(missing), sys.stderr)
            if opts.ready_fd is not None:
                _signal_ready(opts.ready_fd)

        keep = {fd for fd in (opts.exit_fd, opts.ready_fd) if fd is not None}
        try:
            return supervisor.run(cfg, on_ready=on_ready, on_confined=on_confined,
                                  keep_fds=keep)
        finally:
            if "api" in state:
                state["api"].close()
    except PastaError as e:
        print(f"pypasta-slirp4netns: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        print(f"pypasta-slirp4netns: {e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - a bug: one line, as pypasta's CLI does
        print(f"pypasta-slirp4netns: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
