"""The typed counters (pasta.util.stats): declared names only, drops by reason, access by name."""

from __future__ import annotations

import pytest

from pasta.util.stats import Stats


def test_counters_are_declared_attributes_and_a_typo_fails():
    s = Stats()
    s.udp_to_host += 2
    assert s["udp_to_host"] == 2 and s.get("udp_to_host") == 2
    with pytest.raises(AttributeError):
        s.udp_to_hots = 1                      # slots: no new names


def test_drops_are_counted_by_reason_and_read_by_name():
    s = Stats()
    s.drop("udp: send failed")
    s.drop("udp: send failed", 3)
    assert s["drop:udp: send failed"] == 4 and s.get("drop:other", 0) == 0
    assert ("drop:udp: send failed", 4) in s.items()


def test_in_means_counted_and_items_lists_every_counter():
    s = Stats()
    assert "udp_gso_sends" not in s
    s.udp_gso_sends += 1
    assert "udp_gso_sends" in s
    names = [k for k, _ in s.items()]
    assert "tcp_flows" in names and "internal_errors" in names and len(names) == len(set(names))


def test_stats_text_is_pastas_table():
    """--stats: pasta's staircase header (every 20 lines) and one `%6lu` column per type."""
    from pasta.shell.engine import EPOLL_TYPE_STR, stats_text
    counts = list(range(len(EPOLL_TYPE_STR)))
    text = stats_text(counts, 0).split("\n")
    assert len(EPOLL_TYPE_STR) == 19 and len(text) == 21 and text[-1] == ""
    assert text[0] == "       connected TCP socket"
    assert text[1] == " " * 7 + "|" + " " * 6 + "connected spliced TCP socket"
    assert text[18] == " " * 7 + ("|" + " " * 6) * 18 + "configuration socket"
    assert text[19] == " " + "".join(f" {n:6d}" for n in counts)
    assert stats_text(counts, 7) == text[19] + "\n"
    assert stats_text(counts, 20).count("\n") == 20
