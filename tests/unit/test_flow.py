"""The flow table (pasta.core.flow): lookup by side, limits, eviction, idle expiry, deferred free,
the sweep timer and the log prefix, driven without an event loop."""

from __future__ import annotations

import pytest

from pasta.core.flow import Flow, FlowSide, FlowTab, FlowType, Pif


class F(Flow):
    __slots__ = ("name",)

    def __init__(self, name):
        super().__init__()
        self.name = name


class Owner:
    def __init__(self):
        self.closed = []

    def flow_close(self, flow, evicted):
        self.closed.append((flow.name, evicted))


def add(tab, owner, name, now=0.0, ftype=FlowType.UDP, pif=Pif.TAP):
    f = F(name)
    ok = tab.new(f, ftype, pif, name, owner, now, (pif, Pif.HOST),
                 (FlowSide(b"\x0a\0\0\x02", 1000, b"\x0a\0\0\x01", 53), FlowSide()))
    return f if ok else None


def test_expiry_pops_only_idle_flows_in_lru_order():
    tab, o = FlowTab(), Owner()
    tab.limit(FlowType.UDP, 8, timeout=10)
    a, b, c = add(tab, o, "a", 0), add(tab, o, "b", 1), add(tab, o, "c", 2)
    tab.touch(a, 5)                      # a is now the most recent
    tab.timer_handler(11.5)
    assert o.closed == [("b", False)]
    tab.timer_handler(12.5)
    assert o.closed[-1] == ("c", False)
    tab.timer_handler(14.9)
    assert len(o.closed) == 2
    tab.timer_handler(16)
    assert o.closed[-1] == ("a", False) and tab.count(FlowType.UDP) == 0
    assert a.freed and b.freed and c.freed


def test_idle_expiry_runs_at_most_once_a_second_but_type_handlers_every_tick():
    tab, o, ticks = FlowTab(), Owner(), []
    tab.limit(FlowType.PING, 8, timeout=1)
    tab.on_timer(ticks.append)
    add(tab, o, "a", 0, FlowType.PING)
    tab.timer_handler(0.5)               # expiry pass: nothing idle yet
    tab.timer_handler(1.25)              # idle, but the next expiry pass is at 1.5
    assert o.closed == []
    tab.timer_handler(1.5)
    assert o.closed == [("a", False)] and ticks == [0.5, 1.25, 1.5]


def test_a_full_type_with_a_timeout_evicts_its_least_recently_used_flow():
    tab, o = FlowTab(), Owner()
    tab.limit(FlowType.UDP, 2, timeout=180)
    a, b = add(tab, o, "a"), add(tab, o, "b")
    tab.touch(a, 1)
    c = add(tab, o, "c", 2)
    assert c is not None and o.closed == [("b", True)]
    bucket = tab.bucket(FlowType.UDP, Pif.TAP)
    assert list(bucket) == ["a", "c"] and "b" not in bucket and len(bucket) == 2


def test_eviction_takes_the_oldest_flow_of_the_type_across_its_buckets():
    tab, o = FlowTab(), Owner()
    tab.limit(FlowType.UDP, 2, timeout=180)
    add(tab, o, "spliced", 0, pif=Pif.SPLICE)
    add(tab, o, "tap", 1)
    add(tab, o, "new", 2)
    assert o.closed == [("spliced", True)]


def test_a_full_type_without_a_timeout_refuses():
    tab, o = FlowTab(), Owner()
    tab.limit(FlowType.TCP, 1)
    assert add(tab, o, "a", ftype=FlowType.TCP) is not None
    assert add(tab, o, "b", ftype=FlowType.TCP) is None
    assert o.closed == [] and tab.count(FlowType.TCP) == 1


def test_the_global_limit_counts_every_type_and_freed_slots_until_the_batch_ends():
    deferred = []
    tab, o = FlowTab(max_flows=2, defer=deferred.append), Owner()
    a = add(tab, o, "a", ftype=FlowType.TCP)
    add(tab, o, "b", ftype=FlowType.TCP_SPLICE)
    assert add(tab, o, "c", ftype=FlowType.TCP) is None             # full
    tab.free(a)
    tab.free(a)                                                      # idempotent
    assert tab.lookup(FlowType.TCP, Pif.TAP, "a") is None           # unhashed at once
    assert len(tab) == 2 and add(tab, o, "c", ftype=FlowType.TCP) is None
    assert len(deferred) == 1                                        # one deferred pass
    deferred.pop()()                                                 # end of the batch
    assert len(tab) == 1 and add(tab, o, "c", ftype=FlowType.TCP) is not None


def test_lookup_is_by_type_pif_and_side():
    tab, o = FlowTab(), Owner()
    a = add(tab, o, ("v4", 1), ftype=FlowType.TCP)
    assert tab.lookup(FlowType.TCP, Pif.TAP, ("v4", 1)) is a
    assert tab.lookup(FlowType.UDP, Pif.TAP, ("v4", 1)) is None
    assert tab.lookup(FlowType.TCP, Pif.HOST, ("v4", 1)) is None
    assert a.ini.eport == 1000 and a.ini.oport == 53 and a.pif == (Pif.TAP, Pif.HOST)
    with pytest.raises(KeyError):
        add(tab, o, ("v4", 1), ftype=FlowType.TCP)


def test_the_sweep_timer_runs_while_flows_exist():
    timers, now = [], [0.0]

    def call_later(delay, fn):
        timers.append((delay, fn))
        return object()                  # the engine's Timer
    tab, o = FlowTab(call_later=call_later, clock=lambda: now[0]), Owner()
    tab.limit(FlowType.PING, 8, timeout=1)
    add(tab, o, "a", 0, FlowType.PING)
    add(tab, o, "b", 0, FlowType.PING)
    assert len(timers) == 1                              # one timer for the whole table
    now[0] = 2.0
    timers.pop()[1]()
    assert sorted(o.closed) == [("a", False), ("b", False)] and not timers   # table empty


def test_every_flow_has_a_unique_number_and_passts_log_prefix():
    tab, o = FlowTab(), Owner()
    a, b = add(tab, o, "a", ftype=FlowType.TCP), add(tab, o, "b", ftype=FlowType.PING)
    assert a.uid != b.uid
    assert a.prefix() == f"Flow {a.uid} (TCP): " and b.prefix().endswith("(PING): ")


def test_close_all_hands_every_flow_to_its_owner():
    tab, o = FlowTab(), Owner()
    add(tab, o, "a")
    add(tab, o, "b", ftype=FlowType.TCP)
    tab.close_all()
    assert sorted(o.closed) == [("a", False), ("b", False)] and not tab.flows()


def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        FlowTab(max_flows=0)
    with pytest.raises(ValueError):
        FlowTab().limit(FlowType.UDP, 0)


def test_udp_stream_rule_of_pasta_2026():
    """The target answered and one side sent more than one datagram: a stream."""
    f = F("x")
    assert not f.stream
    f.seen(False)
    f.seen(False)
    assert not f.stream                  # no answer yet
    f.seen(True)
    assert f.stream
    g = F("y")
    g.seen(False)
    g.seen(True)
    assert not g.stream                  # one each way: a request and its answer
    g.seen(True)
    assert g.stream


def test_two_timeouts_streams_live_longer():
    """Conntrack's pair (30 s, 120 s): a stream outlives the short timeout, a one-shot flow
    does not, whatever their order in the LRU."""
    tab, o = FlowTab(), Owner()
    tab.limit(FlowType.UDP, 8, timeout=30, timeout_stream=120)
    s, a, b = add(tab, o, "stream", 0), add(tab, o, "oneshot", 1), add(tab, o, "late", 40)
    for side in (False, False, True):
        s.seen(side)
    tab.timer_handler(35)
    assert o.closed == [("oneshot", False)]
    tab.timer_handler(71)
    assert o.closed[-1] == ("late", False) and not s.freed
    tab.timer_handler(121)
    assert o.closed[-1] == ("stream", False) and tab.count(FlowType.UDP) == 0
    assert a.freed and b.freed


def test_a_stream_timeout_shorter_than_the_timeout_is_raised_to_it():
    tab, o = FlowTab(), Owner()
    tab.limit(FlowType.UDP, 8, timeout=180, timeout_stream=120)
    s = add(tab, o, "s", 0)
    s.seen(False), s.seen(True), s.seen(True)
    tab.timer_handler(150)
    assert o.closed == []
    tab.timer_handler(181)
    assert o.closed == [("s", False)]
