"""Topic name / filter validation, shared-subscription prefixes and matching tables."""

import pytest

from nanomq_py.mqtt.topics import split_shared, topic_matches, validate_topic_filter, validate_topic_name

VALID_NAMES = ["a", "a/b", "/", "/a", "a/", "a//b", "$SYS/broker/uptime", " ", "ü/€", "a" * 65535]
INVALID_NAMES = ["", "a/+", "+", "#", "a/#", "a+b", "a#", "a\x00b", "€" * 21846]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_topic_names(name):
    validate_topic_name(name)


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_topic_names(name):
    with pytest.raises(ValueError):
        validate_topic_name(name)


def test_max_levels():
    validate_topic_name("a/b/c", max_levels=3)
    validate_topic_filter("a/+/#", max_levels=3)
    with pytest.raises(ValueError):
        validate_topic_name("a/b/c/d", max_levels=3)
    with pytest.raises(ValueError):
        validate_topic_filter("a/+/c/#", max_levels=3)


VALID_FILTERS = [
    "a",
    "#",
    "+",
    "a/#",
    "a/+/b",
    "+/+",
    "/+",
    "+/",
    "a//#",
    "$SYS/#",
    "$share/group/a/b",
    "$share/g/#",
    "$share/g/+/x",
    "$queue/a/+",
    "$queue/#",
    "$sharex/a",
]
INVALID_FILTERS = [
    "",
    "a#",
    "a/#/b",
    "#/a",
    "a/b#",
    "a+",
    "a/+b",
    "++",
    "##",
    "$share",
    "$share/",
    "$share/g",
    "$share/g/",
    "$share//a",
    "$share/g+/a",
    "$share/#/a",
    "$share/g/a/#/b",
    "$queue",
    "$queue/",
    "$queue/a#",
]


@pytest.mark.parametrize("flt", VALID_FILTERS)
def test_valid_topic_filters(flt):
    validate_topic_filter(flt)


@pytest.mark.parametrize("flt", INVALID_FILTERS)
def test_invalid_topic_filters(flt):
    with pytest.raises(ValueError):
        validate_topic_filter(flt)


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ("$share/g/a/#", ("g", "a/#")),
        ("$share/group/a", ("group", "a")),
        ("$queue/a/b", ("$queue", "a/b")),
        ("a/b", (None, "a/b")),
        ("$SYS/#", (None, "$SYS/#")),
        ("$sharex/a", (None, "$sharex/a")),
    ],
)
def test_split_shared(flt, expected):
    assert split_shared(flt) == expected


MATCHES = [
    ("a/b", "a/b", True),
    ("a/b", "a/c", False),
    ("a/b", "a/b/c", False),
    ("a/+", "a/b", True),
    ("a/+", "a/", True),
    ("a/+", "a", False),
    ("a/+", "a/b/c", False),
    ("+/+", "/x", True),
    ("+", "/x", False),
    ("/+", "/x", True),
    ("a/#", "a", True),
    ("a/#", "a/b/c", True),
    ("a/#", "ab", False),
    ("#", "a/b/c", True),
    ("#", "/", True),
    ("+/b/#", "x/b", True),
    ("+/b/#", "x/c", False),
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+/player1", "sport/tennis/player1", True),
    # "$" topics are not matched by a leading wildcard (MQTT-4.7.2-1).
    ("#", "$SYS/uptime", False),
    ("+/uptime", "$SYS/uptime", False),
    ("$SYS/#", "$SYS/uptime", True),
    ("$SYS/+", "$SYS/uptime", True),
    ("a/#", "a/$b", True),
    ("A/b", "a/b", False),
]


@pytest.mark.parametrize(("flt", "topic", "expected"), MATCHES)
def test_topic_matches(flt, topic, expected):
    assert topic_matches(flt, topic) is expected


@pytest.mark.parametrize("flt", ["$share/g/a/+", "$queue/a/+"])
def test_shared_filters_match_through_their_real_filter(flt):
    _group, real = split_shared(flt)
    assert topic_matches(real, "a/b")
    assert not topic_matches(real, "b/b")
