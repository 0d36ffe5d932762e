"""A table of flows with idle expiry and a capacity, in least-recently-used order.

Purpose: the bookkeeping shared by ICMP echo and UDP flows (pasta's flow.c table and the
per-protocol timeouts of udp_flow.c and icmp.c: 180 s and 60 s idle), as plain code over keys,
values and timestamps, unit-testable without sockets.

Theory of operation: an `OrderedDict` from key to flow. `touch()` (every datagram in either
direction) moves the flow to the end and stamps it, so the front is always the least recently
used flow: `expire(now)` pops from the front while flows are idle for `timeout` seconds and stops
at the first live one (O(expired), not O(flows)); `add()` on a full table evicts the front flow
first (pasta refuses new flows when its table is full; evicting the idlest keeps new traffic
working). Removed flows are returned to the caller, who owns their sockets.

States and events: a flow is in the table or not; the table never closes anything itself.

Invariants: insertion order == recency order; `len(table) <= capacity`; every value has a
writable `last` attribute (the monotonic time of its last use).

Limits: one clock (the engine's batch time); no per-flow timeouts.

Kernel assumptions: none. Differences from passt: passt has one table for every protocol with
FLOW_MAX (128k) entries and refuses new flows when full.
"""

from __future__ import annotations

from collections import OrderedDict


class FlowTable:
    def __init__(self, timeout: float, capacity: int):
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.timeout = timeout
        self.capacity = capacity
        self.flows: OrderedDict = OrderedDict()

    def __len__(self) -> int:
        return len(self.flows)

    def __contains__(self, key) -> bool:
        return key in self.flows

    def get(self, key):
        return self.flows.get(key)

    def values(self):
        return self.flows.values()

    def touch(self, key, flow, now: float) -> None:
        flow.last = now
        self.flows.move_to_end(key)

    def add(self, key, flow, now: float) -> list:
        """Insert a new flow; returns the flows evicted to make room (at most one)."""
        evicted = []
        if key in self.flows:
            raise KeyError(f"duplicate flow {key!r}")
        if len(self.flows) >= self.capacity:
            evicted.append(self.flows.popitem(last=False)[1])
        flow.last = now
        self.flows[key] = flow
        return evicted

    def remove(self, key):
        return self.flows.pop(key, None)

    def expire(self, now: float) -> list:
        """Pop and return every flow idle for at least `timeout` seconds."""
        out = []
        flows, limit = self.flows, now - self.timeout
        while flows:
            key, flow = next(iter(flows.items()))
            if flow.last > limit:
                break
            del flows[key]
            out.append(flow)
        return out

    def clear(self) -> list:
        out = list(self.flows.values())
        self.flows.clear()
        return out
