"""Counters of the translator, typed: every counter declared once, with what it counts.

Purpose: one place for what pypasta counts (frames, flows, drops by reason, errors), read by
the SIGUSR2 state dump, `pypasta status` and the tests, and written by the protocol handlers
as plain attribute increments (`stats.udp_to_host += 1`: no dictionary lookup per frame).

Theory of operation: `Stats` is a slotted dataclass of integer counters; drops are counted by
reason in `drops` (`drop(reason)`), as pasta's per-reason debug messages, since the reasons
are open-ended. For readers that name counters as strings (the state dump's `name=value`
pairs, tests), `stats["name"]` reads a counter and `stats["drop:reason"]` a drop count;
`items()` lists every counter, zero or not, then the drops; `name in stats` is true once that
counter has counted something.

States and events: none; counters only grow, except the gauges (`*_flows`, `splice_conns`:
flows open now).

Invariants: every name is a declared field (a typo is an AttributeError, not a new key).

Limits: not thread-safe (one thread runs the loop).

Kernel assumptions: none.

Differences from passt: passt keeps no such counters (its debug log says why a frame went);
pasta 2026's `--stats` prints per-direction byte and frame counts, which these cover in part.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

DROP = "drop:"


@dataclass(slots=True)
class Stats:
    # the loop
    internal_errors: int = 0        # handler exceptions (bugs), logged with a traceback
    # the link
    tap_frames_in: int = 0
    tap_frames_out: int = 0
    tap_write_dropped: int = 0      # frames the link did not take (queue full, link down)
    # TCP through the tap
    tcp_flows: int = 0              # gauge
    tcp_opened: int = 0
    tcp_closed: int = 0
    tcp_resets_to_ns: int = 0
    tcp_no_flow_resets: int = 0     # RSTs for segments that belong to no flow
    tcp_retransmits: int = 0
    tcp_fast_retransmits: int = 0
    tcp_challenge_acks: int = 0
    tcp_keepalives_to_ns: int = 0
    tcp_window_probes: int = 0
    tcp_tap_reverts: int = 0        # segments the link refused: sequence reverted
    tcp_flow_errors: int = 0
    tcp_sndbuf_waits: int = 0       # autotuned send buffers polled for EPOLLOUT
    tcp_short_writes: int = 0
    tcp_abandoned: int = 0          # SYN_RCVD flows whose namespace stopped retrying
    # TCP loopback bypass
    splice_conns: int = 0           # gauge
    splice_opened: int = 0
    splice_closed: int = 0
    splice_refused: int = 0
    splice_errors: int = 0
    # UDP
    udp_flows: int = 0              # gauge
    udp_to_host: int = 0
    udp_to_ns: int = 0
    udp_flows_evicted: int = 0
    udp_gso_sends: int = 0
    udp_gso_fallbacks: int = 0
    udp_splice_flows: int = 0       # gauge
    udp_splice_datagrams: int = 0
    # ICMP
    icmp_flows: int = 0             # gauge
    icmp_requests: int = 0
    icmp_replies: int = 0
    icmp_flows_evicted: int = 0
    icmp_unreachable_sent: int = 0
    drops: dict = field(default_factory=dict)

    def drop(self, reason: str, count: int = 1) -> None:
        drops = self.drops
        drops[reason] = drops.get(reason, 0) + count

    # ----------------------------------------------------------------- by name
    def __getitem__(self, name: str) -> int:
        if name.startswith(DROP):
            return self.drops[name[len(DROP):]]
        return getattr(self, name)

    def __setitem__(self, name: str, value: int) -> None:
        if name.startswith(DROP):
            self.drops[name[len(DROP):]] = value
        else:
            setattr(self, name, value)

    def get(self, name: str, default: int = 0) -> int:
        try:
            return self[name]
        except (KeyError, AttributeError):
            return default

    def __contains__(self, name: str) -> bool:
        return bool(self.get(name))

    def items(self) -> list:
        """(name, value) of every counter, then of every drop reason ("drop:reason")."""
        out = [(f.name, getattr(self, f.name)) for f in fields(self) if f.name != "drops"]
        out.extend((DROP + r, n) for r, n in self.drops.items())
        return out
