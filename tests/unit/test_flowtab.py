"""FlowTable: LRU order, idle expiry, capacity eviction."""

from __future__ import annotations

import pytest

from pasta.flowtab import FlowTable


class F:
    def __init__(self, name):
        self.name = name
        self.last = None


def test_expire_pops_only_idle_flows_in_lru_order():
    t = FlowTable(timeout=10, capacity=8)
    a, b, c = F("a"), F("b"), F("c")
    t.add("a", a, 0)
    t.add("b", b, 1)
    t.add("c", c, 2)
    t.touch("a", a, 5)                   # a is now the most recent
    assert [f.name for f in t.expire(11.5)] == ["b"]
    assert [f.name for f in t.expire(12)] == ["c"]
    assert t.expire(14.9) == []
    assert [f.name for f in t.expire(15)] == ["a"]
    assert len(t) == 0


def test_full_table_evicts_least_recently_used():
    t = FlowTable(timeout=10, capacity=2)
    a, b, c = F("a"), F("b"), F("c")
    assert t.add("a", a, 0) == []
    assert t.add("b", b, 0) == []
    t.touch("a", a, 1)
    assert t.add("c", c, 2) == [b]
    assert "b" not in t and "a" in t and "c" in t and len(t) == 2


def test_duplicate_and_remove():
    t = FlowTable(timeout=1, capacity=4)
    t.add("k", F("k"), 0)
    with pytest.raises(KeyError):
        t.add("k", F("k2"), 0)
    assert t.remove("k").name == "k"
    assert t.remove("k") is None
    assert t.clear() == []


def test_capacity_must_be_positive():
    with pytest.raises(ValueError):
        FlowTable(1, 0)
