"""The bridge's pure parts: topic mapping and the in-memory offline cache."""

from __future__ import annotations

import pytest

from nanomq_py.bridge.cache import MemoryCache
from nanomq_py.bridge.mapping import Rule, TopicMap


@pytest.mark.parametrize(
    "source, target, prefix, suffix, topic, mapped",
    [
        ("sensors/#", "site1/#", "", "", "sensors/a/t", "site1/a/t"),
        ("sensors/#", "site1/#", "", "", "sensors", "site1"),
        ("sensors/+/temp", "site1/+/t", "", "", "sensors/k/temp", "site1/k/t"),
        ("a/+/b/#", "x/+/#", "", "", "a/1/b/2/3", "x/1/2/3"),
        ("a/+/b/+", "x/+", "", "", "a/1/b/2", "x/1"),  # more captures than target wildcards
        ("a/#", "fixed/topic", "", "", "a/b/c", "fixed/topic"),
        ("a/#", "", "edge/", "/raw", "a/b", "edge/a/b/raw"),
        ("topic1", "fwd/topic1", "", "/emqx", "topic1", "fwd/topic1/emqx"),
        ("sensors/#", "site1/#", "", "", "other/a", None),
        ("+/x", "y/+", "", "", "$SYS/x", None),  # wildcards never match $ topics at the first level
        ("$SYS/#", "sys/#", "", "", "$SYS/broker/uptime", "sys/broker/uptime"),
    ],
)
def test_rule_maps_wildcard_levels_in_order(source, target, prefix, suffix, topic, mapped):
    assert Rule(source, target, None, None, prefix, suffix).map(topic) == mapped


def test_the_first_matching_rule_wins_and_misses_are_cached():
    rules = TopicMap([Rule("a/b", "first", 1, None, "", ""), Rule("a/#", "second", None, True, "", "")])
    rule, topic = rules.lookup("a/b")
    assert (topic, rule.qos) == ("first", 1)
    assert rules.lookup("a/c")[1] == "second"
    assert rules.lookup("z") is None and rules.lookup("z") is None


def test_memory_cache_is_fifo_with_out_of_order_removal():
    cache = MemoryCache(limit=10)
    for item in "abcde":
        cache.append(item)
    assert [item for _, item in cache.peek(3)] == ["a", "b", "c"]
    seqs = [seq for seq, _ in cache.peek(5)]
    cache.remove([seqs[2]])  # acked out of order
    assert [item for _, item in cache.peek(5)] == ["a", "b", "d", "e"]
    cache.remove([seqs[0], seqs[1]])
    assert len(cache) == 2 and [item for _, item in cache.peek(5)] == ["d", "e"]
    cache.remove([seqs[0], 999])  # unknown and already removed seqs are ignored
    assert len(cache) == 2


def test_memory_cache_drops_the_oldest_when_full_and_counts_it():
    cache = MemoryCache(limit=3)
    for item in range(5):
        cache.append(item)
    assert [item for _, item in cache.peek(10)] == [2, 3, 4]
    assert (len(cache), cache.dropped) == (3, 2)
    first = cache.peek(1)[0][0]
    cache.remove([first + 1])  # the middle one, then overflow again: the head goes, not a removed one
    cache.append(5)
    cache.append(6)
    assert [item for _, item in cache.peek(10)] == [4, 5, 6]
    assert cache.dropped == 3
