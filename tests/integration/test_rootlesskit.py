"""RootlessKit 1.1.0 with `--slirp4netns-binary` pointing at pypasta-slirp4netns (issue 7).

RootlessKit runs as the unprivileged test user on the host namespace of the hermetic topology,
probes `--help`, pre-creates a persistent tap0 in its child's namespaces, starts the helper as
`--mtu 65520 -r 3 [--api-socket ...] CHILDPID tap0` and configures tap0 itself. The child reaches
the host's loopback as 10.0.2.2, and `rootlessctl add-ports/remove-ports` publish a child port
on the host with both port drivers (builtin: RootlessKit's own; slirp4netns: our API socket).
"""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from helpers import env
from helpers.proc import alive, wait_until

HOST_PORT = 7060
FWD_PORT = 7061


def _wrapper(t) -> str:
    """An executable RootlessKit can be given: runs the helper from the rootless source copy
    and records its PID, so the test can check it is gone afterwards."""
    path = os.path.join(t.workdir, "pypasta-slirp4netns")
    with open(path, "w") as f:
        # Probes (--help) are not the helper: only the real run records its PID.
        f.write(f"#!/bin/sh\ncase \"$1\" in --help|--version) ;; *) echo $$ > "
                f"{t.workdir}/helper.pid;; esac\n"
                f"export PYTHONPATH={env.rootless_src()}\n"
                f"exec {env.python_for('rootless')} -m podman_compat.slirp4netns \"$@\"\n")
    os.chmod(path, 0o755)
    return path


@pytest.mark.parametrize("driver", ["builtin", "slirp4netns"])
def test_rootlesskit_child_network_and_ports(topology, driver):
    """With the slirp4netns port driver RootlessKit also asks for the sandbox and seccomp:
    the helper joins the child's user namespace as the test user, then sandboxes."""
    t = topology
    t.host_popen(["socat", f"TCP4-LISTEN:{HOST_PORT},bind=127.0.0.1,fork,reuseaddr",
                  "SYSTEM:echo host-loopback"], name="host-tcp")
    t.wait_listening("host", HOST_PORT)
    state = os.path.join(t.workdir, f"rk-{driver}")
    ready = os.path.join(t.workdir, f"child-ready-{driver}")
    child_cmd = (f"socat TCP4-LISTEN:80,fork,reuseaddr SYSTEM:'echo child' & "
                 f"touch {ready}; wait")
    rk = t.hostns.popen(["rootlesskit", "--net=slirp4netns", f"--slirp4netns-binary={_wrapper(t)}",
                         f"--port-driver={driver}", "--mtu=65520", f"--state-dir={state}",
                         *(["--slirp4netns-sandbox=true", "--slirp4netns-seccomp=true"]
                           if driver == "slirp4netns" else []),
                         "sh", "-c", child_cmd], user="rootless", name=f"rootlesskit-{driver}")
    try:
        wait_until(lambda: os.path.exists(ready) or rk.poll() is not None, 30, "rootlesskit child")
        assert rk.poll() is None, t.logs(rk)
        child = open(os.path.join(state, "child_pid")).read().strip()

        def in_child(cmd, **kw):
            return subprocess.run(["nsenter", "-t", child, "-n", *cmd], capture_output=True,
                                  text=True, timeout=20, env=env.root_env(), **kw)
        wait_until(lambda: ":80 " in in_child(["ss", "-Hltn"]).stdout, 10, "child server")
        r = in_child(["socat", "-T", "5", "-", f"TCP4:10.0.2.2:{HOST_PORT}"])
        assert r.stdout == "host-loopback\n", r.stderr + str(t.logs(rk))

        ctl = ["rootlessctl", f"--socket={state}/api.sock"]
        r = t.hostns.run([*ctl, "add-ports", f"127.0.0.1:{FWD_PORT}:80/tcp"], user="rootless")
        port_id = r.stdout.strip()
        assert port_id.isdigit(), r.stdout + r.stderr
        got = t.host(["socat", "-T", "5", "-", f"TCP4:127.0.0.1:{FWD_PORT}"]).stdout
        assert got == "child\n"
        listed = t.hostns.run([*ctl, "list-ports"], user="rootless").stdout
        assert [port_id, "tcp", "127.0.0.1", str(FWD_PORT)] in \
            [line.split()[:4] for line in listed.splitlines()]
        t.hostns.run([*ctl, "remove-ports", port_id], user="rootless")
        r = t.host(["socat", "-T", "2", "-", f"TCP4:127.0.0.1:{FWD_PORT}"], check=False)
        assert r.returncode != 0 and "child" not in r.stdout
    finally:
        if rk.poll() is None:
            os.killpg(rk.pid, signal.SIGTERM)
        rk.wait(20)
    # RootlessKit SIGKILLs its helper on the way out: nothing of it may be left.
    helper = int(open(os.path.join(t.workdir, "helper.pid")).read())
    wait_until(lambda: not alive(helper), 10, "helper gone after RootlessKit exited")
