"""ACL rules through real brokers: every selector kind (username, clientid,
ipaddr, and/or groups), first match wins, no_match, actions, `@topic`,
${clientid}/${username}, subscriptions judged by what they deliver, denied
publish and subscribe answers in 3.1.1 and 5, deny_action = disconnect and
the will topic. Delivery is observed by an admin subscribed to `#`: what a
client published before a marker the admin sends afterwards has been routed
by then, so a missing message is proven missing without waiting."""

from __future__ import annotations

import pytest
from broker_process import start_broker
from mqtt_client import unique_id
from raw_client import RawClient

from nanomq_py.broker.auth import filter_covers, filters_overlap
from nanomq_py.mqtt.packets import (
    Disconnect,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    SubOptions,
    Subscribe,
    Will,
)

ACL_CONF = """
rules = [
  # the observer of these tests may do anything
  {"permit": "allow", "username": "admin"}
  # first match wins: alice may not publish here although the next rule allows alice/#
  {"permit": "deny", "username": "alice", "action": "publish", "topics": ["alice/forbidden"]}
  {"permit": "allow", "username": "alice", "action": "pubsub", "topics": ["alice/#"]}
  # every client publishes under its own client id, every user reads its own inbox
  {"permit": "allow", "clientid": "#", "action": "publish", "topics": ["sensors/${clientid}/#"]}
  {"permit": "allow", "action": "subscribe", "topics": ["inbox/${username}/#"]}
  {"permit": "allow", "ipaddr": "127.0.0.0/8", "action": "subscribe", "topics": ["local/#"]}
  {"permit": "allow", "ipaddrs": ["10.0.0.0/8", "192.168.0.0/16"], "action": "subscribe", "topics": ["lan/#"]}
  {"permit": "allow", "and": [{"username": "bob"}, {"clientid": "bob-1"}], "topics": ["both/#"]}
  {"permit": "allow", "or": [{"username": "carl"}, {"clientid": "bob-2"}], "topics": ["either/#"]}
  {"permit": "allow", "action": "subscribe", "topics": ["@lit/#"]}
  {"permit": "deny", "action": "subscribe", "topics": ["feed/secret/#"]}
  {"permit": "allow", "action": "subscribe", "topics": ["feed/+/data"]}
  {"permit": "allow", "action": "publish", "topics": ["feed/#"]}
]
"""

USERS = '"admin": "pw"\n"alice": "pw"\n"bob": "pw"\n"carl": "pw"\n'


@pytest.fixture(scope="module")
def acl_broker(tmp_path_factory):
    directory = tmp_path_factory.mktemp("acl")
    (directory / "acl.conf").write_text(ACL_CONF)
    (directory / "pwd.conf").write_text(USERS)
    conf = """
auth {
  allow_anonymous = true
  no_match = deny
  deny_action = ignore
  password = {include "pwd.conf"}
  acl = {include "acl.conf"}
}
"""
    proc = start_broker(directory, conf)
    yield proc
    proc.stop()
    assert "Traceback" not in proc.output()


def connect(broker, username=None, client_id=None, version=4, will=None):
    client = RawClient(broker, version=version)
    password = b"pw" if username else None
    ack = client.connect(client_id or unique_id("acl"), username=username, password=password, will=will)
    assert ack.reason_code == 0, f"CONNACK {ack.reason_code:#x}"
    return client


@pytest.fixture
def admin(acl_broker):
    observer = connect(acl_broker, "admin")
    assert observer.subscribe("#") == [0]
    yield observer
    observer.close()


def delivered(admin, client, *topics):
    """Publish each topic from client (QoS 1, acknowledged), then a marker from
    admin; the topics admin received before the marker."""
    for topic in topics:
        client.publish_acked(topic, b"x", qos=1)
    marker = unique_id("marker/")
    admin.publish(marker)
    seen = []
    while (packet := admin.expect(Publish)).topic != marker:
        seen.append(packet.topic)
    return seen


def granted(client, *filters):
    """SUBSCRIBE return codes, one per filter (QoS 0 asked)."""
    return client.subscribe(*filters)


def test_username_rules_and_first_match_wins(acl_broker, admin):
    alice = connect(acl_broker, "alice")
    assert delivered(admin, alice, "alice/forbidden", "alice/ok") == ["alice/ok"]
    assert granted(alice, "alice/#", "bob/#") == [0, 0x80]
    bob = connect(acl_broker, "bob")
    assert delivered(admin, bob, "alice/ok") == []
    assert granted(bob, "alice/#") == [0x80]


def test_clientid_substitution_and_values_that_cannot_widen_it(acl_broker, admin):
    sensor = connect(acl_broker, client_id="sensor-7")
    assert delivered(admin, sensor, "sensors/sensor-7/t", "sensors/sensor-8/t", "sensors/sensor-7/a/b") == [
        "sensors/sensor-7/t",
        "sensors/sensor-7/a/b",
    ]
    assert granted(sensor, "sensors/sensor-7/#") == [0x80]  # a publish-only rule
    sneaky = connect(acl_broker, client_id="sensor-7/x")
    assert delivered(admin, sneaky, "sensors/sensor-7/x/t") == []  # a "/" in the id matches nothing


def test_username_substitution(acl_broker):
    alice = connect(acl_broker, "alice")
    assert granted(alice, "inbox/alice/#", "inbox/alice/a", "inbox/bob/#", "inbox/+/x") == [0, 0, 0x80, 0x80]
    anonymous = connect(acl_broker)
    assert granted(anonymous, "inbox/${username}/#", "inbox//#") == [0x80, 0x80]


def test_ipaddr_selectors(acl_broker, admin):
    anonymous = connect(acl_broker)
    assert granted(anonymous, "local/#", "lan/#") == [0, 0x80]
    assert delivered(admin, anonymous, "local/x") == []  # a subscribe-only rule


def test_and_or_groups(acl_broker):
    assert granted(connect(acl_broker, "bob", client_id="bob-1"), "both/x") == [0]
    assert granted(connect(acl_broker, "bob", client_id="bob-3"), "both/x") == [0x80]
    assert granted(connect(acl_broker, "alice", client_id="bob-1"), "both/x") == [0x80]
    assert granted(connect(acl_broker, "carl", client_id=unique_id()), "either/x") == [0]
    assert granted(connect(acl_broker, client_id="bob-2"), "either/x") == [0]
    assert granted(connect(acl_broker, "bob", client_id="bob-4"), "either/x") == [0x80]


def test_literal_topics_and_subscriptions_judged_by_what_they_deliver(acl_broker, admin):
    client = connect(acl_broker)
    assert granted(client, "lit/#", "lit/a") == [0, 0x80]  # @lit/# is that filter only
    # feed/+/data would deliver feed/secret/data, refused by the deny rule before the allow
    assert granted(client, "feed/a/data", "feed/+/data", "feed/#", "feed/a/+") == [0, 0x80, 0x80, 0x80]
    assert granted(client, "feed/secret/data", "+/+/data", "$share/g/feed/a/data") == [0x80, 0x80, 0]
    assert delivered(admin, client, "feed/secret/data") == ["feed/secret/data"]  # deny was subscribe-only


def test_no_match_deny_and_version_5_reason_codes(acl_broker, admin):
    v3 = connect(acl_broker)
    assert delivered(admin, v3, "random/t") == []
    assert granted(v3, "random/t") == [0x80]
    v5 = connect(acl_broker, version=5)
    v5.send(Publish("random/t", b"x", qos=1, packet_id=3))
    assert v5.take(Puback, 3).reason_code == 0x87
    v5.send(Publish("random/t", b"x", qos=2, packet_id=4))
    assert v5.take(Pubrec, 4).reason_code == 0x87
    assert v5.subscribe("random/t", "local/a") == [0x87, 0]


def test_a_denied_qos2_publish_completes_its_flow_in_3_1_1(acl_broker, admin):
    client = connect(acl_broker)
    client.send(Publish("random/q2", b"x", qos=2, packet_id=9))
    assert client.take(Pubrec, 9).reason_code == 0
    client.send(Pubrel(9))
    client.take(Pubcomp, 9)
    assert delivered(admin, client) == []


def test_a_denied_will_topic_refuses_the_connect(acl_broker):
    for version, code in ((4, 5), (5, 0x87)):
        with RawClient(acl_broker, version=version) as client:
            assert client.connect(unique_id("w"), will=Will("random/will", b"bye")).reason_code == code
    connect(acl_broker, client_id="sensor-9", will=Will("sensors/sensor-9/status", b"gone")).close()


@pytest.fixture(scope="module")
def strict_broker(tmp_path_factory):
    conf = """
auth {
  no_match = allow
  deny_action = disconnect
  acl = {rules = [
    {permit = deny, action = pubsub, topics = ["private/#"]}
  ]}
}
"""
    proc = start_broker(tmp_path_factory.mktemp("strict"), conf)
    yield proc
    proc.stop()


def test_no_match_allow_with_inline_rules(strict_broker):
    client = connect(strict_broker)
    assert granted(client, "public/#") == [0]
    client.publish_acked("public/a", b"x")
    assert client.expect(Publish).topic == "public/a"


def test_deny_action_disconnect_closes_publishers(strict_broker):
    v3 = connect(strict_broker)
    v3.publish("private/a", b"x", qos=1)
    assert v3.wait_closed() == []
    v5 = connect(strict_broker, version=5)
    v5.publish("private/a", b"x", qos=0)
    [goodbye] = v5.wait_closed()
    assert isinstance(goodbye, Disconnect) and goodbye.reason_code == 0x87


def test_deny_action_disconnect_closes_subscribers_after_the_suback(strict_broker):
    v3 = connect(strict_broker)
    v3.send(Subscribe(1, [("private/#", SubOptions(0))]))
    [suback] = v3.wait_closed()
    assert isinstance(suback, Suback) and suback.reason_codes == [0x80]
    v5 = connect(strict_broker, version=5)
    v5.send(Subscribe(1, [("private/#", SubOptions(0))]))
    suback, goodbye = v5.wait_closed()
    assert suback.reason_codes == [0x87] and goodbye.reason_code == 0x87


@pytest.mark.parametrize(
    "rule, flt, covers, overlaps",
    [
        ("a/#", "a", True, True),
        ("a/#", "a/b/+", True, True),
        ("a/+", "a/#", False, True),
        ("a/+", "a/+", True, True),
        ("a/b", "a/+", False, True),
        ("a/+/c", "a/b/+", False, True),
        ("a/b", "a/c", False, False),
        ("#", "$SYS/x", False, False),
        ("+/x", "$SYS/x", False, False),
        ("$SYS/#", "#", False, False),
        ("#", "+/x", True, True),
        ("a/b/c", "a/b", False, False),
        ("a/+", "a", False, False),
    ],
)
def test_filter_covers_and_overlaps(rule, flt, covers, overlaps):
    assert filter_covers(rule, flt) == covers
    assert filters_overlap(rule, flt) == overlaps
    assert filters_overlap(flt, rule) == overlaps


# The README's example files, as a user copies them (the README puts them in /etc/).
README_PWD = """\
# "username": "password" -- plain, or hashed by scripts/nanomq-passwd
"admin": "public"
"sensor": "sha256$pepper$552d9223768c32cc1c841d670bed181ec5d8b4a54ca9d9c66024bcecab891062"
"dashboard": "pbkdf2_sha256$100000$eV3orjtxaisaTm68$ZzNa6av0VCjjJfKOj4gy8XutHIxeyYhCZ/ZSUgwhn0Q="
"""
README_ACL = """\
rules = [
  # admin may do anything
  {"permit": "allow", "username": "admin"}
  # the dashboard reads everything, $SYS included, and publishes nothing
  {"permit": "allow", "username": "dashboard", "action": "subscribe", "topics": ["$SYS/#", "#"]}
  # sensors publish only from the LAN, each under its own client id
  {"permit": "allow", "and": [{"username": "sensor"}, {"ipaddr": "127.0.0.0/8"}], "action": "publish", "topics": ["devices/${clientid}/#"]}
  # every client reads its own commands; "@" means this exact filter, wildcards and all
  {"permit": "allow", "action": "subscribe", "topics": ["commands/${clientid}", "@devices/+/alarm"]}
  # everything else is refused (no_match = deny would too)
  {"permit": "deny"}
]
"""
README_CONF = """\
auth {
  allow_anonymous = false
  no_match = deny
  deny_action = ignore
  password = {include "/etc/nanomq_pwd.conf"}
  acl = {include "/etc/nanomq_acl.conf"}
}
"""


def test_the_readme_example_files(tmp_path):
    (tmp_path / "nanomq_pwd.conf").write_text(README_PWD)
    (tmp_path / "nanomq_acl.conf").write_text(README_ACL)
    proc = start_broker(tmp_path, README_CONF.replace("/etc/", ""))
    try:
        for username, password, code in (("admin", b"public", 0), ("dashboard", b"nope", 4), (None, None, 5)):
            with RawClient(proc) as client:
                assert (
                    client.connect(unique_id("r"), username=username, password=password).reason_code == code
                )
        dashboard = RawClient(proc)
        assert dashboard.connect(unique_id("d"), username="dashboard", password=b"public").reason_code == 0
        assert dashboard.subscribe("#", "$SYS/#") == [0, 0]
        sensor = RawClient(proc)
        assert sensor.connect("s1", username="sensor", password=b"public").reason_code == 0
        assert sensor.subscribe("commands/s1", "commands/s2", "devices/+/alarm", "devices/s1/alarm") == [
            0,
            0x80,
            0,
            0x80,
        ]
        sensor.publish_acked("devices/s2/temp", b"21")
        sensor.publish_acked("devices/s1/temp", b"22")
        # $SYS/# also brings the $SYS/broker/... statistics (sys_stats): skipped here
        seen = _topics_besides_statistics(dashboard, 2)
        assert seen == ["$SYS/brokers/client_status/s1", "devices/s1/temp"]  # s1 came online, then its data
    finally:
        proc.stop()


def _topics_besides_statistics(client, count):
    """The topics of the next `count` PUBLISHes that are not $SYS/broker/... statistics."""
    topics = []
    while len(topics) < count:
        topic = client.expect(Publish).topic
        if not topic.startswith("$SYS/broker/"):
            topics.append(topic)
    return topics
