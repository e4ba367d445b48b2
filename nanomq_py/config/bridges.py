"""The `bridges { }` section -> `BridgesSettings`: NanoMQ's `bridges.mqtt.<name> { ... }` blocks
and `bridges.mqtt.cache { ... }`.

NanoMQ's keys and meanings (docs: config-description/bridges). Keys that tune NanoMQ's
thread pools or QUIC have no meaning on one gevent hub: they are accepted with a warning.
A bad server URL, topic filter or rule stops the start with one line naming the key.
"""

from __future__ import annotations

from nanomq_py.mqtt import properties as p
from nanomq_py.settings import (
    BridgeCacheSettings,
    BridgeRule,
    BridgeSettings,
    BridgesSettings,
    BridgeTls,
    BridgeWill,
)

from .context import object_list
from .values import (
    _valid_host,
    boolean,
    duration,
    existing_file,
    integer,
    nonempty_string,
    require_topic_filter,
    string,
    string_map,
)

SCHEMES = {"mqtt-tcp": 1883, "tls+mqtt-tcp": 8883}
SERVER_TEXT = "expected mqtt-tcp://host:port or tls+mqtt-tcp://host:port"

# Keys of NanoMQ's that only tune its own threads, QUIC or hybrid switching: accepted, unused.
_UNUSED = (
    "max_parallel_processes",
    "max_recv_queue_len",
    "resend_wait",
    "hybrid_bridging",
    "quic_keepalive",
    "quic_idle_timeout",
    "quic_discon_timeout",
    "quic_handshake_timeout",
    "quic_send_idle_timeout",
    "quic_initial_rtt_ms",
    "quic_max_ack_delay_ms",
    "quic_qos_priority",
    "quic_0rtt",
    "quic_multi_stream",
)

# NanoMQ's names of MQTT 5 CONNECT properties (its spelling) -> (property id, parser).
_CONN_PROPERTIES = {
    "maximum_packet_size": (p.MAXIMUM_PACKET_SIZE, integer(1, p.MAX_VARINT + 5)),
    "receive_maximum": (p.RECEIVE_MAXIMUM, integer(1, 65535)),
    "topic_alias_maximum": (p.TOPIC_ALIAS_MAXIMUM, integer(0, 65535)),
    "request_problem_infomation": (p.REQUEST_PROBLEM_INFORMATION, integer(0, 1)),
    "request_response_infomation": (p.REQUEST_RESPONSE_INFORMATION, integer(0, 1)),
    "session_expiry_interval": (p.SESSION_EXPIRY_INTERVAL, integer(0, 0xFFFFFFFF)),
}
_WILL_PROPERTIES = {
    "payload_format_indicator": (p.PAYLOAD_FORMAT_INDICATOR, integer(0, 1)),
    "message_expiry_interval": (p.MESSAGE_EXPIRY_INTERVAL, integer(0, 0xFFFFFFFF)),
    "content_type": (p.CONTENT_TYPE, string),
    "response_topic": (p.RESPONSE_TOPIC, string),
    "correlation_data": (p.CORRELATION_DATA, string),
    "will_delay_interval": (p.WILL_DELAY_INTERVAL, integer(0, 0xFFFFFFFF)),
}


def read_bridges(section):
    settings = BridgesSettings()
    mqtt = section.section("mqtt")
    if mqtt is not None:
        for name in list(mqtt.data):
            block = mqtt.section(name)
            if name == "cache":
                settings.cache = _read_cache(block)
                continue
            bridge = _read_bridge(name, block)
            if bridge is not None:
                settings.mqtt.append(bridge)
        mqtt.finish()
    section.finish()
    return settings if settings.mqtt else None


def _read_bridge(name, section):
    if not section.take("enable", boolean, True):
        section.seen.update(section.data)  # a disabled block is not checked further
        return None
    ctx = section.ctx
    for key in _UNUSED:
        if section.has(key):
            section.seen.add(key)
            where, label = ctx.locate(section.path + (key,))
            ctx.warn(f"{where}: {label} has no meaning for nanomq_py's single-threaded bridge (ignored)")
    servers = [section.take("server", _server, needed=SERVER_TEXT)]
    servers += section.take("hybrid_servers", _server_list, [])
    proto_ver = section.take("proto_ver", integer(3, 5), 4)
    bridge = BridgeSettings(
        name=name,
        servers=servers,
        proto_ver=proto_ver,
        clientid=section.take("clientid", nonempty_string, f"nanomq-bridge-{name}"),
        keepalive=section.take("keepalive", duration(0, plain_unit="s"), 60.0),
        clean_start=section.take("clean_start", boolean, True),
        username=section.take("username", string, None),
        password=section.take("password", string, None),
        forwards=section.take("forwards", _forwards, []),
        subscription=section.take("subscription", _subscriptions, []),
        max_send_queue_len=section.take("max_send_queue_len", integer(1, 65535), 32),
        resend_interval=section.take("resend_interval", duration(0, low_open=True, plain_unit="ms"), 5.0),
        cancel_timeout=section.take("cancel_timeout", duration(0, low_open=True, plain_unit="ms"), 8.0),
        backoff_max=section.take("backoff_max", duration(0, low_open=True, plain_unit="s"), 60.0),
        retry_qos_0=section.take("retry_qos_0", boolean, False),
        transparent=section.take("transparent", boolean, False),
    )
    will = section.section("will")
    if will is not None:
        bridge.will = _read_will(will)
    ssl = section.section("ssl")
    if ssl is not None:
        bridge.tls = _read_tls(ssl)
    if bridge.tls is None and any(scheme.startswith("tls+") for scheme, _, _ in servers):
        bridge.tls = BridgeTls(verify_peer=False)
    conn = section.section("conn_properties")
    if conn is not None:
        bridge.conn_properties = _read_properties(conn, _CONN_PROPERTIES)
    sub = section.section("sub_properties")
    if sub is not None:
        bridge.sub_properties = _read_properties(
            sub, {"identifier": (p.SUBSCRIPTION_IDENTIFIER, integer(1, 268435455))}
        )
    section.finish()
    return bridge


def _server(ctx, path, value):
    text = nonempty_string(ctx, path, value).strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in SCHEMES:
        ctx.fail(path, value, SERVER_TEXT + " (mqtt-quic and mqtt-ws are not supported)")
    host, colon, port = rest.rstrip("/").rpartition(":")
    if not colon:
        host, port = rest.rstrip("/"), str(SCHEMES[scheme.lower()])
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port.isdigit() or not 0 < int(port) < 65536 or not host or not _valid_host(host):
        ctx.fail(path, value, SERVER_TEXT)
    return scheme.lower(), host, int(port)


def _server_list(ctx, path, value):
    if not isinstance(value, list):
        ctx.fail(path, value, "expected a list of server URLs")
    return [_server(ctx, path + (index,), item) for index, item in enumerate(value)]


def _filter(ctx, path, value):
    topic = nonempty_string(ctx, path, value)
    require_topic_filter(ctx, path, value, topic)
    if topic.startswith("$share/") or topic.startswith("$queue/"):
        ctx.fail(path, value, "expected a topic filter without $share/ or $queue/")
    return topic


def _topic_part(ctx, path, value):
    text = string(ctx, path, value)
    if "+" in text or "#" in text or "\x00" in text:
        ctx.fail(path, value, "expected text without wildcards")
    return text


def _rule(rule, from_key, to_key, from_needed):
    """A rule's topics: the filter on the side messages come from, the target (wildcards
    allowed: they are filled from what the filter matched; empty keeps the topic)."""
    source = rule.take(from_key, _filter, needed=from_needed)
    target = rule.take(to_key, _target, "")
    return source, target


def _target(ctx, path, value):
    text = string(ctx, path, value)
    if text:
        require_topic_filter(ctx, path, value, text)
    return text


def _common(rule, local_topic, remote_topic):
    return BridgeRule(
        local_topic=local_topic,
        remote_topic=remote_topic,
        qos=rule.take("qos", integer(0, 2), None),
        retain=_retain(rule),
        prefix=rule.take("prefix", _topic_part, ""),
        suffix=rule.take("suffix", _topic_part, ""),
    )


def _retain(rule):
    """NanoMQ writes retain as 0/1 (2: keep the message's flag) or true/false."""
    value = rule.data.get("retain")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        rule.seen.add("retain")
        flag = integer(0, 2)(rule.ctx, rule.path + ("retain",), value)
        return None if flag == 2 else bool(flag)
    return rule.take("retain", boolean, None)


def _forwards(ctx, path, value):
    allowed = "expected a list of {local_topic = ..., remote_topic = ...} rules"
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        # NanoMQ before 0.19: a list of topics forwarded unchanged.
        return [BridgeRule(_filter(ctx, path + (i,), item), "") for i, item in enumerate(value)]
    rules = []
    for rule in object_list(
        ctx, path, value, allowed, "expected a rule {local_topic = ..., remote_topic = ...}"
    ):
        local_topic, remote_topic = _rule(rule, "local_topic", "remote_topic", "a forwards rule needs one")
        rules.append(_common(rule, local_topic, remote_topic))
        rule.finish()
    return rules


def _subscriptions(ctx, path, value):
    allowed = "expected a list of {remote_topic = ..., local_topic = ..., qos = ...} rules"
    rules = []
    for rule in object_list(ctx, path, value, allowed, "expected a rule {remote_topic = ..., qos = ...}"):
        remote_topic, local_topic = _rule(
            rule, "remote_topic", "local_topic", "a subscription rule needs one"
        )
        bridge_rule = _common(rule, local_topic, remote_topic)
        if bridge_rule.qos is None:
            bridge_rule.qos = 1
        bridge_rule.retain_as_published = rule.take("retain_as_published", _flag, False)
        bridge_rule.retain_handling = rule.take("retain_handling", integer(0, 2), 0)
        bridge_rule.no_local = rule.take("nolocal", _flag, True)
        rule.finish()
        rules.append(bridge_rule)
    return rules


def _flag(ctx, path, value):
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    return boolean(ctx, path, value)


def _read_will(section):
    will = BridgeWill(
        topic=section.take("topic", _will_topic, needed="a will needs a topic"),
        payload=section.take("payload", string, "").encode(),
        qos=section.take("qos", integer(0, 2), 0),
        retain=section.take("retain", _flag, False),
    )
    props = section.section("properties")
    if props is not None:
        will.properties = _read_properties(props, _WILL_PROPERTIES)
    section.finish()
    return will


def _will_topic(ctx, path, value):
    topic = nonempty_string(ctx, path, value)
    if "+" in topic or "#" in topic:
        ctx.fail(path, value, "expected a topic name without wildcards")
    return topic


def _read_properties(section, known):
    """NanoMQ's property names -> {property id: value}; zero/empty values mean "not sent"."""
    props = {}
    for name, (pid, parse) in known.items():
        value = section.take(name, parse, None)
        if value not in (None, "", 0):
            props[pid] = value.encode() if pid == p.CORRELATION_DATA else value
    users = section.take("user_property", string_map, {})
    if users:
        props[p.USER_PROPERTY] = list(users.items())
    section.finish()
    return props


def _read_tls(section):
    if not section.take("enable", boolean, True):
        section.seen.update(section.data)
        return None
    tls = BridgeTls(
        cacertfile=section.take("cacertfile", existing_file, ""),
        certfile=section.take("certfile", existing_file, ""),
        keyfile=section.take("keyfile", existing_file, ""),
        key_password=section.take("key_password", string, ""),
    )
    tls.verify_peer = section.take("verify_peer", boolean, bool(tls.cacertfile))
    if tls.certfile and not tls.keyfile:
        section.ctx.missing(section.path + ("keyfile",), "a certfile needs its keyfile")
    section.finish()
    return tls


def _read_cache(section):
    cache = BridgeCacheSettings(
        disk_cache_size=section.take("disk_cache_size", integer(1), 102400),
        mounted_file_path=section.take("mounted_file_path", nonempty_string, "/tmp/"),
        flush_mem_threshold=section.take("flush_mem_threshold", integer(1), 100),
        resend_interval=section.take("resend_interval", duration(0, low_open=True, plain_unit="ms"), 5.0),
    )
    section.finish()
    return cache
