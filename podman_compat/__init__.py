"""Front ends that let Podman and RootlessKit drive pypasta as if it were slirp4netns.

Purpose: accept slirp4netns's command line and its API-socket protocol byte for byte, so that a
client that was written against slirp4netns 1.2.0 cannot tell the difference from what it sends
and reads back.

Theory of operation: two pure (sans-IO) front-end modules, in the layer of `pasta/front/conf.py`
(STYLE.md B1), and two of the I/O shell:

- `slirp4netns_cli`: argv -> frozen `SlirpOptions`, an `InfoRequest` for `--help`/`--version`, or
  a `SlirpError` carrying slirp4netns's exact stderr text, usage flag and exit code.
- `api`: the bytes of one API-socket request -> the exact reply bytes, with port forwards owned by
  a `HostFwdTable` and carried out by an injected backend (the engine's listener sockets).

- `slirp4netns`: the `pypasta-slirp4netns` command: options -> pasta `Config`, the supervisor's
  attach mode, the API socket as engine handlers, exit-fd and ready-fd.
- `sandbox`: `--enable-sandbox` (mount namespace with /etc and /run only, capabilities down to
  CAP_NET_BIND_SERVICE) and `--enable-seccomp` (a hand-written BPF filter).

The pure modules import no socket, select, subprocess, fcntl, ctypes or pyroute2.
"""
