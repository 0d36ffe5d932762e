"""util: what every layer uses: errors, logging, counters, socket creation, namespace calls.

Purpose: the leaves of pypasta (passt's util.c, log.c): `errors` (the exception types and their
one-line messages), `log` (pasta's log format, syslog, log file with `--log-size`), `stats`
(the typed counters), `sock` (every L4 socket, passt's sock_l4()), `netns` (running a call
inside a network namespace) and `lazyimport` (importing heavy modules only when used).

Theory of operation: plain modules; nothing here imports any other pypasta package.

States and events: none. Invariants: util imports nothing above it (tests/unit/test_layering.py).
Limits: none. Kernel assumptions: see `netns` and `sock`. Differences from passt: none beyond
the modules'.
"""
