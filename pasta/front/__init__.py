"""front: command lines: pasta's (`conf`, passt's conf.c) and the getopt it uses.

Purpose: `conf` turns pasta's argv into a `plan.config.Config` with pasta's messages and runs
the supervisor (the `pypasta` command); `getopt` is a getopt_long as glibc's, so option
spellings and errors match pasta's. The slirp4netns and CNI front ends live outside this
package (`podman_compat/`, `cni/`) and use it the same way.

Theory of operation: parse, check, hand over; nothing here runs in the loop.

States and events: none. Invariants: the top layer: anything may be imported here, nothing
imports it but the entry points. Limits: none. Kernel assumptions: none. Differences from
passt: see `conf`.
"""
