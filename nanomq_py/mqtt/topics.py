"""Topic names and filters: validation, shared-subscription prefixes, and MQTT matching.

Every function is one split of the string plus one pass over its levels, so the cost is linear in
the topic's length (at most 65535 bytes); nothing recurses or backtracks.
"""

MAX_TOPIC_BYTES = 65535
SHARE_PREFIX = "$share/"
QUEUE_PREFIX = "$queue/"


def _check_common(text: str, what: str, max_levels: int) -> None:
    if not text:
        raise ValueError(f"{what} is empty")
    if len(text) * 4 > MAX_TOPIC_BYTES and len(text.encode()) > MAX_TOPIC_BYTES:
        raise ValueError(f"{what} longer than 65535 bytes")
    if "\x00" in text:
        raise ValueError(f"{what} contains U+0000")
    if max_levels and text.count("/") >= max_levels:
        raise ValueError(f"{what} has more than {max_levels} levels")


def validate_topic_name(name: str, max_levels: int = 0) -> None:
    """ValueError(reason) unless ``name`` may be published to (no wildcards; ``max_levels`` 0 = unlimited)."""
    _check_common(name, "topic name", max_levels)
    if "+" in name or "#" in name:
        raise ValueError("topic name contains a wildcard")


def _validate_plain_filter(flt: str, max_levels: int) -> None:
    _check_common(flt, "topic filter", max_levels)
    if "+" not in flt and "#" not in flt:
        return
    levels = flt.split("/")
    last = len(levels) - 1
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != last):
            raise ValueError("'#' must be a whole level and the last one")
        if "+" in level and level != "+":
            raise ValueError("'+' must be a whole level")


def validate_topic_filter(flt: str, max_levels: int = 0) -> None:
    """ValueError(reason) unless ``flt`` is a valid filter, including ``$share/<group>/<filter>`` and ``$queue/<filter>``."""
    if flt.startswith(SHARE_PREFIX):
        parts = flt.split("/", 2)
        if len(parts) < 3:
            raise ValueError("shared subscription needs $share/<group>/<filter>")
        group = parts[1]
        if not group:
            raise ValueError("shared subscription group is empty")
        if "+" in group or "#" in group:
            raise ValueError("shared subscription group contains a wildcard")
        _validate_plain_filter(parts[2], max_levels)
    elif flt.startswith(QUEUE_PREFIX):
        _validate_plain_filter(flt[len(QUEUE_PREFIX) :], max_levels)
    elif flt in ("$share", "$queue"):
        raise ValueError(f"{flt} needs a topic filter")
    else:
        _validate_plain_filter(flt, max_levels)


def split_shared(flt: str) -> tuple[str | None, str]:
    """(group, real_filter): ``$share/g/a/#`` -> ("g", "a/#"), ``$queue/a`` -> ("$queue", "a"), else (None, flt)."""
    if flt.startswith(SHARE_PREFIX):
        parts = flt.split("/", 2)
        if len(parts) == 3:
            return parts[1], parts[2]
    elif flt.startswith(QUEUE_PREFIX):
        return "$queue", flt[len(QUEUE_PREFIX) :]
    return None, flt


def topic_matches(flt: str, topic: str) -> bool:
    """Whether the (non-shared) filter ``flt`` matches ``topic``; a leading wildcard never matches a ``$`` topic."""
    if flt == topic:
        return True
    if "+" not in flt and "#" not in flt:
        return False
    if topic.startswith("$") and flt[0] in "+#":
        return False
    filter_levels = flt.split("/")
    topic_levels = topic.split("/")
    for index, level in enumerate(filter_levels):
        if level == "#":
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)
