"""A stand-in for pasta.shell.autofwd.ProcNet in unit tests: the ports bound on one side, set
by the test instead of read from /proc/net."""

from __future__ import annotations


class ProcNet:
    def __init__(self):
        self.tcp, self.udp = set(), set()

    def ports(self, udp):
        return set(self.udp if udp else self.tcp)

    def close(self):
        pass
