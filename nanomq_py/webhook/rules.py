"""Which events produce a POST: the `events = [{event, topic}, ...]` rules compiled
into a flag per client event and a topic matcher per message event.

Rules are tried in order and an event produces at most one POST, so the rules of
one event collapse into "every occurrence" or a tuple of topic filters. `topic`
only applies to message events; on other events it is ignored.

A message rule without `topic` matches every message except `$`-topics, like
`#` does: broker-internal `$SYS` traffic reaches the endpoint only through a
rule that names it (e.g. `topic = "$SYS/#"`). NanoMQ posted its own `$SYS`
messages to every such rule.
"""

from __future__ import annotations

from ..mqtt.topics import topic_matches
from ..settings import WEBHOOK_CLIENT_EVENTS, WEBHOOK_MESSAGE_EVENTS

EVENT_NAMES = WEBHOOK_CLIENT_EVENTS + WEBHOOK_MESSAGE_EVENTS


def compile_rules(rules) -> dict[str, tuple[str, ...]]:
    """{event name: topic filters} for the configured events, in rule order.

    Client events, and message events whose only filter is `#` (or no topic),
    map to ("#",); an event that is absent never fires.
    """
    filters: dict[str, list[str]] = {}
    for rule in rules:
        if rule.event not in EVENT_NAMES:
            raise ValueError(f"unknown webhook event {rule.event!r}; allowed: {', '.join(EVENT_NAMES)}")
        known = filters.setdefault(rule.event, [])
        topic = "#" if rule.event in WEBHOOK_CLIENT_EVENTS or not rule.topic else rule.topic
        if topic not in known:
            known.append(topic)
    compiled = {}
    for event, topics in filters.items():
        if "#" in topics:  # `#` matches all but $-topics: only filters naming a $-topic still add matches
            topics = ["#"] + [topic for topic in topics if topic.startswith("$")]
        compiled[event] = tuple(topics)
    return compiled


def topic_matcher(filters: tuple[str, ...]):
    """A function topic -> bool: does any of `filters` match, as mqtt.topics.topic_matches says.

    The common shapes (`#`, an exact topic, `prefix/#`) get a test that does not
    split the topic: a fraction of a microsecond on the broker's path.
    """
    tests = [_filter_test(flt) for flt in filters]
    if len(tests) == 1:
        return tests[0]

    def any_matches(topic: str) -> bool:
        for test in tests:  # noqa: SIM110 - a plain loop: no generator per message
            if test(topic):
                return True
        return False

    return any_matches


def _filter_test(flt: str):
    if flt == "#":
        return _not_a_dollar_topic
    if "+" not in flt and "#" not in flt:
        return lambda topic: topic == flt
    if flt.endswith("/#") and "+" not in flt and "#" not in flt[:-2]:
        parent, prefix = flt[:-2], flt[:-1]  # "a/b/#" matches "a/b" and "a/b/..."
        return lambda topic: topic == parent or topic.startswith(prefix)
    return lambda topic: topic_matches(flt, topic)


def _not_a_dollar_topic(topic: str) -> bool:
    return not topic.startswith("$")
