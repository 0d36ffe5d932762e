"""setup: the process: namespaces, the tap device, netlink, and the supervisor.

Purpose: `supervisor` (spawn or join the namespaces, run the command, run the translator, exit
with the command; passt's pasta.c and passt.c main), `tapdev` (the tap device with its
virtio-net header, the link implementation for pasta mode), `netlink` (addresses, routes and
links over rtnetlink), `nswatch` (the end of the command or of the namespace) and `isolation`
(confinement after set-up: empty root, capabilities, no_new_privs, seccomp).

Theory of operation: set-up runs before the loop and may block; what runs in the loop is the
shell's.

States and events: see `supervisor`. Invariants: imports shell and lower, never front
(tests/unit/test_layering.py). Limits: Linux only. Kernel assumptions: see the modules.
Differences from passt: see the modules.
"""
