"""Webhook rules: which events fire, and the fast topic tests against MQTT's matching rules."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nanomq_py.mqtt.topics import topic_matches
from nanomq_py.settings import WebhookRule
from nanomq_py.webhook.rules import compile_rules, topic_matcher


def test_rules_collapse_per_event():
    rules = compile_rules(
        [
            WebhookRule("on_message_publish", "a/+"),
            WebhookRule("on_message_publish", "b/#"),
            WebhookRule("on_message_publish", "a/+"),
            WebhookRule("on_message_acked"),
            WebhookRule("on_message_acked", "x"),
            WebhookRule("on_client_connack", "ignored/for/client/events"),
        ]
    )
    assert rules == {
        "on_message_publish": ("a/+", "b/#"),
        "on_message_acked": ("#",),
        "on_client_connack": ("#",),
    }


def test_a_catch_all_rule_keeps_only_the_rules_for_dollar_topics():
    rules = [
        WebhookRule("on_message_publish", "a"),
        WebhookRule("on_message_publish", "$SYS/#"),
        WebhookRule("on_message_publish"),
    ]
    assert compile_rules(rules) == {"on_message_publish": ("#", "$SYS/#")}


def test_unknown_event_is_refused():
    with pytest.raises(ValueError, match="unknown webhook event 'on_client_created'"):
        compile_rules([WebhookRule("on_client_created")])


@pytest.mark.parametrize(
    ("flt", "topic", "expected"),
    [
        ("nmq/#", "nmq", True),
        ("nmq/#", "nmq/pub", True),
        ("nmq/#", "nmqx/pub", False),
        ("nmq/#", "nmq/", True),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("$SYS/#", "$SYS/brokers/x", True),
        ("nmq/pub", "nmq/pub", True),
        ("nmq/pub", "nmq/pub/x", False),
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a//c", True),
    ],
)
def test_topic_matcher_examples(flt, topic, expected):
    assert topic_matcher((flt,))(topic) is expected


LEVELS = st.sampled_from(["a", "b", "", "$SYS", "$x"])
TOPICS = st.lists(LEVELS, min_size=1, max_size=4).map("/".join).filter(bool)
FILTER_LEVELS = st.sampled_from(["a", "b", "", "+", "$SYS"])


@st.composite
def filters(draw):
    levels = draw(st.lists(FILTER_LEVELS, min_size=1, max_size=4))
    if draw(st.booleans()):
        levels.append("#")
    return "/".join(levels)


@given(st.lists(filters(), min_size=1, max_size=3), TOPICS)
def test_topic_matcher_agrees_with_mqtt_matching(flts, topic):
    expected = any(topic_matches(flt, topic) for flt in flts)
    assert topic_matcher(tuple(flts))(topic) is expected
