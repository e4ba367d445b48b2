"""Topic mapping of a bridge's rules, both ways.

A rule has a filter on the side a message comes from and a target on the side it goes to.
An empty target keeps the topic; a literal one replaces it; where the target has wildcards,
the levels the filter's wildcards matched fill them in order (`sensors/#` -> `site1/#` maps
`sensors/a/t` to `site1/a/t`). The prefix and suffix are added after. The first matching
rule wins. Results are cached per topic (bounded), so a steady stream of topics costs one
dict lookup per message.
"""

from __future__ import annotations

_CACHE_LIMIT = 4096


def _captures(flt_levels, levels):
    """The levels matched by the filter's wildcards (a `#` capture is one joined string),
    or None when the topic does not match."""
    captured = []
    count = len(levels)
    for index, part in enumerate(flt_levels):
        if part == "#":
            captured.append("/".join(levels[index:]))
            return captured
        if index >= count:
            return None
        if part == "+":
            captured.append(levels[index])
        elif part != levels[index]:
            return None
    return captured if len(flt_levels) == count else None


def _fill(target_levels, captured):
    """The target with its wildcards replaced by the captures, in order."""
    out = []
    position = 0
    for part in target_levels:
        if part in ("+", "#"):
            value = captured[position] if position < len(captured) else ""
            position += 1
            if part == "#" and value == "" and out:
                continue  # `a/#` matched `a` itself: no trailing level
            out.append(value)
        else:
            out.append(part)
    return "/".join(out)


class Rule:
    """One compiled rule: `source` filter -> `target` pattern, with overrides."""

    __slots__ = ("source", "target", "qos", "retain", "prefix", "suffix", "_source_levels", "_target_levels")

    def __init__(self, source, target, qos, retain, prefix, suffix):
        self.source = source
        self.target = target
        self.qos = qos
        self.retain = retain
        self.prefix = prefix
        self.suffix = suffix
        self._source_levels = source.split("/")
        self._target_levels = target.split("/") if target else None

    def map(self, topic):
        """The mapped topic, or None when the filter does not match."""
        if topic.startswith("$") and self.source[:1] in ("+", "#"):
            return None  # wildcards do not match $ topics at the first level
        captured = _captures(self._source_levels, topic.split("/"))
        if captured is None:
            return None
        if self._target_levels is None:
            mapped = topic
        elif "+" in self.target or "#" in self.target:
            mapped = _fill(self._target_levels, captured)
        else:
            mapped = self.target
        return self.prefix + mapped + self.suffix


class TopicMap:
    """The rules of one direction: topic -> (rule, mapped topic), or None."""

    __slots__ = ("rules", "_cache")

    def __init__(self, rules):
        self.rules = rules
        self._cache = {}

    def lookup(self, topic):
        hit = self._cache.get(topic)
        if hit is not None:
            return hit or None
        result = False
        for rule in self.rules:
            mapped = rule.map(topic)
            if mapped is not None:
                result = (rule, mapped)
                break
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[topic] = result
        return result or None


def forward_map(settings):
    """forwards: local_topic filter -> remote_topic."""
    return TopicMap(
        [Rule(r.local_topic, r.remote_topic, r.qos, r.retain, r.prefix, r.suffix) for r in settings.forwards]
    )


def subscription_map(settings):
    """subscription: remote_topic filter -> local_topic."""
    return TopicMap(
        [
            Rule(r.remote_topic, r.local_topic, r.qos, r.retain, r.prefix, r.suffix)
            for r in settings.subscription
        ]
    )
