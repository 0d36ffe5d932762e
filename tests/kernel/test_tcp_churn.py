"""TCP flow churn leaks nothing: 20,000 SYNs from the "namespace" to a closed port on this
machine's loopback (through the gateway-to-loopback mapping) each open a socket, are refused,
answered with an RST and closed; afterwards no flow, handler, socket or Python memory remains.

In-process with the real engine and a recording tap side (tests/kernel/test_udp_flows.py);
loopback only.
"""

from __future__ import annotations

import gc
import tracemalloc

from pasta.shell.engine import Engine
from pasta.shell.tcp_buf import TcpFlows
from pasta.core.wire.l4 import TcpHdr

from test_udp_flows import GW, NS, RULES, Recorder, spin

CLOSED_PORT = 1          # nothing listens on 127.0.0.1:1 here


def _rounds(engine, tcp, n, base):
    for i in range(n):
        h = TcpHdr(base + i, CLOSED_PORT, 1000, 0, 0x02, 65535, 0, 0, 20, 54, 54, 1460, 7,
                   False)
        tcp.from_tap(False, NS, GW, h, b"")
        if i % 200 == 199:
            spin(engine, lambda: not tcp.flows)
    spin(engine, lambda: not tcp.flows)


def test_refused_flows_leave_nothing_behind():
    engine = Engine()
    link = Recorder()
    sent = [0]

    def count(pieces, n):
        sent[0] += 1
        return True
    link.send = count
    tcp = TcpFlows(engine, link, RULES, 65520)
    _rounds(engine, tcp, 5000, 20000)             # warm up dicts and free lists
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    _rounds(engine, tcp, 20000, 30000)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    st = engine.stats
    assert st["tcp_opened"] == st["tcp_closed"] == 25000
    assert st["tcp_resets_to_ns"] == 25000 and sent[0] == 25000
    assert not tcp.flows and not tcp.by_fd and not tcp.ack_pending
    assert not engine.handlers
    assert grown < 64 * 1024, f"{grown} bytes still allocated after 20,000 flows"
    tcp.close()
    engine.close()
