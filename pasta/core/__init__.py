"""core: the translator's decisions, sans-IO: codecs, responders, flows, forwarding, TCP.

Purpose: everything that decides what a frame or a socket event means and what to do about it,
as plain code over bytes and events: `wire` (frame codecs), `arp`, `dhcp`, `dhcpv6`, `ndp`
(responders), `neigh` (the host's neighbour MACs: passt's fwd_neigh_* and netlink notifier),
`flow` (the flow table, passt's flow.c), `fwd` (address translation, passt's fwd.c) and
`fwd_rule` (the forwarding rule table, pasta 2026's fwd_rule), and `tcp` (the TCP state machine
and the decisions of passt's tcp.c).

Theory of operation: no sockets, no epoll, no clock of its own: the shell passes in the time,
the bytes and, where the core must act, a narrow interface to act through.

States and events: see the modules. Invariants: no I/O import, directly or indirectly
(tests/unit/test_layering.py); imports only plan and util. Limits: none. Kernel assumptions:
none. Differences from passt: passt mixes decisions and system calls in the same functions.
"""
