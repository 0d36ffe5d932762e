"""The flow table: every flow of every protocol, in one place (passt's flow.c and flow_table.h).

Purpose: one table for TCP, spliced TCP, UDP (tap and spliced) and ICMP echo flows, with a global
limit, lookup by side, deferred free, one sweep timer and a per-flow log prefix, as plain code
over flows and timestamps (sans-IO: the timer and the deferred free are armed through callables
the shell passes in, so the table is unit-tested without an event loop).

Theory of operation:
- A flow is an object of a protocol's flow class (`pasta.core.tcp.TcpFlow`, extended by the
  shell's `SockFlow`; `pasta.shell.udp.UdpFlow`, `pasta.shell.icmp.EchoFlow`,
  `pasta.shell.udp_splice.SpliceFlow`, `pasta.shell.tcp_splice.Pair`), each a subclass of
  `Flow`, which carries what passt's `struct flow_common` carries: the type (`FlowType`: TCP,
  TCP_SPLICE, PING, UDP), the interface of each side (`Pif`: TAP, HOST, SPLICE), the two sides
  (`FlowSide`: initiating side `ini` and target side `tgt`, each with the endpoint's address and
  port and ours, passt's eaddr/eport/oaddr/oport), a unique number for the log prefix
  (`Flow 12 (TCP): ...`, passt's flow_log_()) and the owner: the protocol handler that closes it.
- Lookup by side: each flow is hashed once, by (type, pif) and the tuple of the side pypasta
  looks it up by (`hkey`): for tap flows the tap side (v6, eaddr, eport, oaddr, oport), the
  5-tuple a frame from the namespace carries; for spliced UDP the listening socket and the
  client (the socket is "our" end there). The buckets are ordered dicts kept in
  least-recently-used order (`touch()`), so idle expiry is O(expired), not O(flows).
- Limits: a global limit (`max_flows`, passt's FLOW_MAX) and one per type. A full type or table
  refuses a new flow (`new()` returns False: passt does the same), except where the type has an
  idle timeout (UDP, PING): there the least recently used flow of that type makes room, closed
  by its owner, which keeps new traffic working (counted by the owner).
- Deferred free (passt's flow_defer_handler): `free()` unhashes a flow at once, so the next
  frame with the same tuple starts a new flow, but its slot counts against the global limit
  until the end of the current batch of events, when `defer_handler()` (queued with the
  shell's `defer`) releases it: a flow freed by one event is never confused with a new one
  within the same batch.
- One sweep timer (`SWEEP_S`, armed with the shell's `call_later` while any flow exists, and
  cancelled when the last one goes):
  `timer_handler(now)` runs the per-type handlers registered with `on_timer()` (TCP's
  retransmission and keepalive timers) on every tick, and the idle expiry of types with a
  timeout once every `IDLE_SWEEP_S`, closing expired flows through their owners.

Names: `Pif.NONE` (no side yet), `Pif.TAP` (frames through the link), `Pif.HOST` (host
sockets), `Pif.SPLICE` (sockets inside the namespace); `FlowType.TCP` (tap TCP),
`FlowType.TCP_SPLICE` (loopback bypass pairs), `FlowType.PING` (ICMP echo), `FlowType.UDP`
(tap and spliced UDP).

States and events: a flow is live (hashed) from `new()` until `free()` or expiry, then freed
(`flow.freed`; its slot released at the end of the batch).

Invariants: a live flow is in exactly one bucket; `len(table)` counts live flows plus slots
freed in the current batch; the table never closes a socket itself: owners do
(`owner.flow_close(flow)`), and then call `free()`.

Limits: one clock (the engine's batch time); a type has one idle timeout, or two (UDP: the
conntrack "udp_timeout" for flows that are not `stream` yet, "udp_timeout_stream" for those
that are); a sweep walks the flows idle longer than the short one.

Kernel assumptions: none (sans-IO).

Differences from passt: passt has a fixed array of FLOW_MAX slots with a free-cluster list and
a hash table of sides; here Python dicts do both jobs, bucketed by (type, pif) so a protocol's
flows can be walked without walking the others. passt refuses new UDP and ping flows when full;
here the least recently used one of the type makes room (pypasta's behaviour before this table).
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from typing import NamedTuple

FLOW_MAX = 32768                # flows at once, all types together (passt: 128k, C-sized)
SWEEP_S = 0.25                  # the sweep timer: TCP's timer resolution
IDLE_SWEEP_S = 1.0              # idle expiry of UDP and ping flows


class Pif(enum.IntEnum):
    """passt's pif: the interface a side of a flow lives on (numbered as pif.h and the pesto
    protocol)."""

    NONE = 0
    HOST = 1                    # host sockets
    TAP = 2                     # frames through the link (tap device or passt stream)
    SPLICE = 3                  # sockets inside the namespace (the loopback bypass)


class FlowType(enum.IntEnum):
    """passt's enum flow_type."""

    TCP = 1
    TCP_SPLICE = 2
    PING = 3
    UDP = 4


INISIDE, TGTSIDE = 0, 1


class FlowSide(NamedTuple):
    """passt's struct flowside: one side's endpoint (e*) and our address on that side (o*).
    Addresses are packed bytes, strings (spliced sockets) or None where not known."""

    eaddr: object = None
    eport: int = 0
    oaddr: object = None
    oport: int = 0


class Flow:
    """Common part of every flow (passt's struct flow_common); protocol classes extend it."""

    __slots__ = ("uid", "type", "pif", "side", "hpif", "hkey", "owner", "last", "freed",
                 "n_ini", "n_tgt")

    def __init__(self):
        self.n_ini = self.n_tgt = 0     # datagrams from each side (UDP; capped at 2)
        self.uid = 0
        self.type = None
        self.pif = (Pif.NONE, Pif.NONE)
        self.side = (FlowSide(), FlowSide())
        self.hpif = Pif.NONE            # the bucket: the pif of the side it is looked up by
        self.hkey = None
        self.owner = None
        self.last = 0.0
        self.freed = False

    @property
    def stream(self) -> bool:
        """UDP: the target side answered and one side sent more than one datagram (pasta
        2026's udp_flow.c rule for the longer conntrack "stream" timeout)."""
        return self.n_tgt > 0 and (self.n_ini > 1 or self.n_tgt > 1)

    def seen(self, from_tgt: bool) -> None:
        """Count a datagram from the target side (True) or the initiating side (False)."""
        if from_tgt:
            if self.n_tgt < 2:
                self.n_tgt += 1
        elif self.n_ini < 2:
            self.n_ini += 1

    @property
    def ini(self) -> FlowSide:
        return self.side[INISIDE]

    @property
    def tgt(self) -> FlowSide:
        return self.side[TGTSIDE]

    def prefix(self) -> str:
        """The per-flow log prefix, as passt's flow_log_() ("" before it is in the table)."""
        return f"Flow {self.uid} ({self.type.name}): " if self.type is not None else ""


class TypeLimit:
    __slots__ = ("capacity", "timeout", "timeout_stream", "count")

    def __init__(self, capacity: int, timeout: float | None,
                 timeout_stream: float | None = None):
        self.capacity = capacity
        self.timeout = timeout
        self.timeout_stream = timeout_stream    # for flows whose `stream` is true
        self.count = 0


class Bucket:
    """The live flows of one (type, pif), by lookup key, least recently used first. Read-only
    views for owners and tests: len(), `in`, get(), values(), `flows` (the ordered dict)."""

    __slots__ = ("flows",)

    def __init__(self):
        self.flows: OrderedDict = OrderedDict()

    def __len__(self) -> int:
        return len(self.flows)

    def __contains__(self, key) -> bool:
        return key in self.flows

    def __iter__(self):
        return iter(self.flows)

    def __bool__(self) -> bool:
        return bool(self.flows)

    def get(self, key):
        return self.flows.get(key)

    def __getitem__(self, key):
        return self.flows[key]

    def values(self):
        return self.flows.values()

    def items(self):
        return self.flows.items()


class FlowTab:
    """The flow table (module docstring). `call_later(delay, fn)`, `defer(fn)` and `clock()`
    (the batch time) come from the shell (the engine); without them (unit tests) the caller
    drives `timer_handler()` and `defer_handler()` itself."""

    def __init__(self, max_flows: int = FLOW_MAX, call_later=None, defer=None, clock=None):
        if max_flows < 1:
            raise ValueError("max_flows must be positive")
        self.max_flows = max_flows
        self._call_later = call_later
        self._defer = defer
        self._clock = clock
        self._buckets: dict = {}
        self._limits: dict = {}
        self._timer_handlers: list = []
        self._live = 0
        self._freed_pending = 0
        self._defer_armed = False
        self._timer = None
        self._next_idle = 0.0
        self._uid = 0

    @classmethod
    def for_engine(cls, engine, max_flows: int = FLOW_MAX) -> "FlowTab":
        """A table whose timer, deferred free and clock are the engine's."""
        return cls(max_flows, engine.call_later, engine.defer, lambda: engine.now)

    # ----------------------------------------------------------------- configuration
    def limit(self, ftype: FlowType, capacity: int, timeout: float | None = None,
              replace: bool = True, timeout_stream: float | None = None) -> None:
        """At most `capacity` flows of `ftype`; with a `timeout`, flows idle that long expire
        and the least recently used makes room when full; with a `timeout_stream` (not
        shorter than `timeout`), flows whose `stream` is true expire after that instead.
        `replace=False`: only if the type has no limit yet (two handlers sharing a type)."""
        if capacity < 1:
            raise ValueError("capacity must be positive")
        if timeout_stream is not None and (timeout is None or timeout_stream < timeout):
            timeout_stream = timeout
        lim = self._limits.get(ftype)
        if lim is not None and not replace:
            return
        if lim is None:
            self._limits[ftype] = TypeLimit(capacity, timeout, timeout_stream)
        else:
            lim.capacity, lim.timeout, lim.timeout_stream = capacity, timeout, timeout_stream

    def on_timer(self, handler) -> None:
        """handler(now) on every sweep tick (passt: the per-type timer handlers)."""
        self._timer_handlers.append(handler)

    def bucket(self, ftype: FlowType, pif: Pif) -> Bucket:
        b = self._buckets.get((ftype, pif))
        if b is None:
            b = self._buckets[(ftype, pif)] = Bucket()
        return b

    # ----------------------------------------------------------------- flows
    def __len__(self) -> int:
        return self._live + self._freed_pending

    def count(self, ftype: FlowType) -> int:
        lim = self._limits.get(ftype)
        return lim.count if lim is not None else 0

    def full(self, ftype: FlowType) -> bool:
        """Would a new flow of `ftype` be refused (the type or the table at its limit, and
        nothing that can make room)?"""
        lim = self._limits.get(ftype)
        at_limit = len(self) >= self.max_flows or (lim is not None and lim.count >= lim.capacity)
        return at_limit and (lim is None or lim.timeout is None)

    def lookup(self, ftype: FlowType, pif: Pif, key):
        b = self._buckets.get((ftype, pif))
        return b.flows.get(key) if b is not None else None

    def new(self, flow: Flow, ftype: FlowType, pif: Pif, key, owner, now: float,
            pifs: tuple = (Pif.NONE, Pif.NONE), sides: tuple | None = None) -> bool:
        """Insert `flow`, hashed as (ftype, pif, key): `pif` and `key` are the interface and
        the tuple of the side it is looked up by; `pifs` and `sides` are (ini, tgt). False if
        the table or the type is full and nothing can make room: the caller refuses it."""
        lim = self._limits.get(ftype)
        if lim is None:
            lim = self._limits[ftype] = TypeLimit(self.max_flows, None)
        b = self.bucket(ftype, pif)
        if key in b.flows:
            raise KeyError(f"duplicate flow {key!r}")
        while lim.count >= lim.capacity or len(self) >= self.max_flows:
            if lim.timeout is None or not self._evict(ftype):
                return False
        self._uid += 1
        flow.uid = self._uid
        flow.type = ftype
        flow.pif = pifs
        flow.side = sides or (FlowSide(), FlowSide())
        flow.hpif = pif
        flow.hkey = key
        flow.owner = owner
        flow.last = now
        flow.freed = False
        b.flows[key] = flow
        lim.count += 1
        self._live += 1
        self._arm_timer()
        return True

    def touch(self, flow: Flow, now: float) -> None:
        """Traffic on `flow`: it becomes the most recently used of its bucket."""
        flow.last = now
        if not flow.freed:
            self._buckets[(flow.type, flow.hpif)].flows.move_to_end(flow.hkey)

    def free(self, flow: Flow) -> None:
        """Unhash `flow` now; its slot is released at the end of the batch. Idempotent."""
        if flow.freed or flow.type is None:
            return
        b = self._buckets[(flow.type, flow.hpif)]
        if b.flows.get(flow.hkey) is not flow:
            return
        del b.flows[flow.hkey]
        flow.freed = True
        self._limits[flow.type].count -= 1
        self._live -= 1
        self._freed_pending += 1
        if not self._live:
            self.cancel_timer()                 # nothing left to sweep
        if self._defer is None:
            return
        if not self._defer_armed:
            self._defer_armed = True
            self._defer(self.defer_handler)

    def defer_handler(self) -> None:
        """End of a batch: the slots of flows freed during it are released."""
        self._defer_armed = False
        self._freed_pending = 0

    def flows(self, ftype: FlowType | None = None):
        """Every live flow (of one type), bucket by bucket."""
        out = []
        for (t, _), b in self._buckets.items():
            if ftype is None or t == ftype:
                out.extend(b.flows.values())
        return out

    # ----------------------------------------------------------------- eviction and timers
    def _evict(self, ftype: FlowType) -> bool:
        """Close the least recently used flow of `ftype` (idle-expiring types only)."""
        oldest = None
        for (t, _), b in self._buckets.items():
            if t == ftype and b.flows:
                head = next(iter(b.flows.values()))
                if oldest is None or head.last < oldest.last:
                    oldest = head
        if oldest is None:
            return False
        owner = oldest.owner
        self.free(oldest)
        owner.flow_close(oldest, evicted=True)
        return True

    def _arm_timer(self) -> None:
        if self._timer is None and self._call_later is not None and self._clock is not None:
            self._timer = self._call_later(SWEEP_S, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.timer_handler(self._clock())
        if self._live:
            self._arm_timer()

    def timer_handler(self, now: float) -> None:
        """One sweep: per-type handlers, and idle expiry at most once every IDLE_SWEEP_S."""
        for handler in self._timer_handlers:
            handler(now)
        if now < self._next_idle:
            return
        self._next_idle = now + IDLE_SWEEP_S
        for (ftype, _), b in list(self._buckets.items()):
            lim = self._limits.get(ftype)
            if lim is None or lim.timeout is None:
                continue
            limit, flows = now - lim.timeout, b.flows
            if lim.timeout_stream is None or lim.timeout_stream == lim.timeout:
                while flows:
                    flow = next(iter(flows.values()))
                    if flow.last > limit:
                        break
                    owner = flow.owner
                    self.free(flow)
                    owner.flow_close(flow, evicted=False)
                continue
            # Two timeouts: walk the flows idle longer than the short one (oldest first) and
            # keep the streams among them that are within the long one.
            limit_stream = now - lim.timeout_stream
            expired = []
            for flow in flows.values():
                if flow.last > limit:
                    break
                if not flow.stream or flow.last <= limit_stream:
                    expired.append(flow)
            for flow in expired:
                owner = flow.owner
                self.free(flow)
                owner.flow_close(flow, evicted=False)

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close_all(self) -> None:
        """Every flow closed by its owner (shutdown)."""
        self.cancel_timer()
        for flow in self.flows():
            owner = flow.owner
            self.free(flow)
            owner.flow_close(flow, evicted=False)
