"""Front ends that let Podman and RootlessKit drive pypasta as if it were slirp4netns.

Purpose: accept slirp4netns's command line and its API-socket protocol byte for byte, so that a
client that was written against slirp4netns 1.2.0 cannot tell the difference from what it sends
and reads back.

Theory of operation: both modules here are pure (sans-IO) front ends, in the layer of
`pasta/cli.py` (STYLE.md B1):

- `slirp4netns_cli`: argv -> frozen `SlirpOptions`, an `InfoRequest` for `--help`/`--version`, or
  a `SlirpError` carrying slirp4netns's exact stderr text, usage flag and exit code.
- `api`: the bytes of one API-socket request -> the exact reply bytes, with port forwards owned by
  a `HostFwdTable` and carried out by an injected backend (the engine's listener sockets).

The socket shell (accepting on the API socket, reading one request, writing the reply), the
exit-fd and ready-fd handling and the namespace setup live elsewhere and call into these modules.
Nothing in this package imports socket, select, subprocess, fcntl, ctypes or pyroute2.
"""
