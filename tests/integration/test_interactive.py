"""An interactive `pypasta` in a real terminal (tmux): a login shell inside the namespace, and the
shell's exit status becomes pypasta's."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest

from helpers import env, wait_until
from helpers.topology import Topology


class Tmux:
    def __init__(self, sock: str, session: str):
        self.sock = sock
        self.target = f"{session}:0.0"

    def __call__(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.sock, *args], check=True, text=True,
                              capture_output=True, timeout=10).stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", self.target, "-S", "-50")

    def type(self, line: str) -> None:
        self("send-keys", "-t", self.target, "-l", line)
        self("send-keys", "-t", self.target, "Enter")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True, timeout=10)


@pytest.mark.parametrize("user", ["root", "rootless"])
def test_interactive_login_shell_in_tmux(topology, user):
    t = topology
    argv = t.hostns.argv(Topology.pypasta_argv(["--config-net"], user), user)
    if user == "rootless":
        environ = env.rootless_env(env.rootless_src(), {"SHELL": "/bin/sh", "PS1": "ppt$ "})
    else:
        environ = env.root_env({"SHELL": "/bin/sh", "PS1": "ppt$ "})
    cmd = "env -i " + " ".join(shlex.quote(f"{k}={v}") for k, v in environ.items()) + " " + \
        " ".join(shlex.quote(a) for a in argv) + "; echo PYPASTA_EXIT=$?; sleep 60"
    tmux = Tmux(f"{t.id}-tmux", t.id)
    try:
        tmux("new-session", "-d", "-x", "160", "-y", "40", "-s", t.id, cmd)
        # capture-pane strips trailing blanks: a prompt is a line ending in '#' or '$'
        wait_until(lambda: re.search(r"[#$]\s*$", tmux.screen(), re.M), 15,
                   "a shell prompt in the tmux pane")
        tmux.type("echo ns-pid=$$ login=$0 host=$(hostname) uid=$(id -u)")
        scr = wait_until(lambda: next((s for s in [tmux.screen()] if "ns-pid=1 " in s), None), 10,
                         "the shell's answer")
        line = next(l for l in scr.splitlines() if l.startswith("ns-pid=1 "))
        assert "login=-sh" in line and "host=pasta-" in line and "uid=0" in line
        tmux.type("ip -br addr show eth0")
        wait_until(lambda: t.host_ip4 + "/24" in tmux.screen(), 10, "eth0 with the host's address")
        tmux.type("exit 5")
        wait_until(lambda: "PYPASTA_EXIT=" in tmux.screen(), 10,
                   "pypasta exits when the shell does")
        assert "PYPASTA_EXIT=5" in tmux.screen()
    finally:
        tmux.kill()
