"""plan: what to build, as data: the options and the addressing plan (sans-IO).

Purpose: `config` (the parsed options: pasta's `struct ctx` fields that come from the command
line), `portspec` (pasta's -t/-u/-T/-U grammar), `netplan` (addresses, routes and DNS chosen
from the host's state and the options, as pasta's conf.c does) and `linkctx` (what the
responders answer with).

Theory of operation: pure functions and frozen data over options and host facts read
elsewhere; unit-tested without namespaces.

States and events: none. Invariants: no I/O import, directly or indirectly
(tests/unit/test_layering.py); imports only util. Limits: none. Kernel assumptions: none.
Differences from passt: passt computes these in conf.c and keeps them in `struct ctx`.
"""
