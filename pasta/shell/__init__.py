"""shell: the I/O around the core: the epoll loop, the frame link, sockets, listeners.

Purpose: `engine` (the epoll loop, timers, deferred work, signals, fd kinds), `link` (the frame
link interface and its passt stream implementation), `tap` (frame input dispatch and output,
passt's tap.c), `tcp_buf` (TCP through the tap: peek, send, discard; passt's tcp_buf.c and the
socket side of tcp.c), `tcp_splice` (the TCP loopback bypass, passt's tcp_splice.c), `udp`
(UDP flows and -u listeners), `udp_splice` (the UDP loopback bypass), `icmp` (ping sockets),
`listeners`, `fwd_listen` (the forwarding table's listening sockets and the `auto` scan),
`autofwd` (reading /proc/net), `pcap` and `translator` (putting them together).

Theory of operation: thin handlers that carry out what the core decides; each socket is
registered with the engine under its `FdKind`.

States and events: see the modules. Invariants: imports only core, plan and util
(tests/unit/test_layering.py). Limits: one thread. Kernel assumptions: see the modules.
Differences from passt: see the modules.
"""
