"""`GET /api/v4/bridges` and `/api/v4/bridges/{name}` in NanoMQ's shape (its conf_api.c
`get_bridge_config`, rest_api.c `get_mqtt_bridge`): `{"code": 0, "data": {"bridge": {"nodes":
[...], "sqlite": {...}}}}`, one node per bridge (only the named one, or none: NanoMQ answers
an unknown name with an empty list, not 404). Each node has NanoMQ's fields (name, enable,
parallel, connector, forwards, subscription, sub_properties, tls) and ours where they tell
more: `status` (state, since, last error, counters), `hybrid_servers`, the rules' qos /
retain / prefix / suffix, the TLS file paths. Secrets are never shown: a password or key
password that is set reads "******", and NanoMQ's key / cert / cacert (the PEM texts) are null.
"""

from __future__ import annotations

from time import gmtime, strftime

from ..mqtt import properties as p
from ..settings import BridgeCacheSettings
from .api import SUCCEED

_HIDDEN = "******"
# MQTT 5 property id -> NanoMQ's JSON name (its API spells "information" right, unlike its config).
_CONN_NAMES = {
    p.SESSION_EXPIRY_INTERVAL: "session_expiry_interval",
    p.RECEIVE_MAXIMUM: "receive_maximum",
    p.MAXIMUM_PACKET_SIZE: "maximum_packet_size",
    p.TOPIC_ALIAS_MAXIMUM: "topic_alias_maximum",
    p.REQUEST_RESPONSE_INFORMATION: "request_response_information",
    p.REQUEST_PROBLEM_INFORMATION: "request_problem_information",
}
_FLAGS = (p.REQUEST_RESPONSE_INFORMATION, p.REQUEST_PROBLEM_INFORMATION)  # booleans in NanoMQ's JSON
_WILL_NAMES = {
    p.PAYLOAD_FORMAT_INDICATOR: "payload_format_indicator",
    p.MESSAGE_EXPIRY_INTERVAL: "message_expiry_interval",
    p.CONTENT_TYPE: "content_type",
    p.WILL_DELAY_INTERVAL: "will_delay_interval",
    p.RESPONSE_TOPIC: "response_topic",
    p.CORRELATION_DATA: "correlation_data",
}


def bridge_routes(api):
    """The routes to add to an Api's table."""

    def list_bridges(query):
        return _answer(api.broker, api.broker.bridges.values())

    def one_bridge(query, name):
        bridge = api.broker.bridges.get(name)
        return _answer(api.broker, [] if bridge is None else [bridge])

    return {("GET", ("bridges",)): list_bridges, ("GET", ("bridges", None)): one_bridge}


def _answer(broker, bridges):
    bridge = {"nodes": [_node(b) for b in bridges], "sqlite": _cache_json(broker.settings)}
    return {"code": SUCCEED, "data": {"bridge": bridge}}


def _node(bridge):
    s = bridge.settings
    v5 = s.proto_ver == 5
    node = {
        "name": s.name,
        "enable": True,  # a disabled block makes no bridge
        "parallel": 1,
        "connector": _connector(s, v5),
        "forwards": [_rule(r, with_qos=r.qos is not None) for r in s.forwards],
        "subscription": [_rule(r, with_qos=True) for r in s.subscription],
    }
    if v5:
        node["sub_properties"] = _sub_properties(s.sub_properties)
    node["tls"] = _tls(s.tls)
    node["hybrid_servers"] = ["{}://{}:{}".format(*server) for server in s.servers[1:]]
    node["max_send_queue_len"] = s.max_send_queue_len
    status = bridge.counters()
    status["since"] = strftime("%Y-%m-%dT%H:%M:%SZ", gmtime(bridge.since))
    status["last_error"] = bridge.last_error
    status["server"] = "{}://{}:{}".format(*bridge.server)
    node["status"] = status
    return node


def _connector(s, v5):
    connector = {
        "server": "{}://{}:{}".format(*s.servers[0]),
        "proto_ver": s.proto_ver,
        "clientid": s.clientid or None,
        "clean_start": s.clean_start,
        "username": s.username,
        "password": None if s.password is None else _HIDDEN,
        "keepalive": int(s.keepalive),
    }
    if v5:
        props = s.conn_properties
        conn = {name: props[pid] for pid, name in _CONN_NAMES.items() if pid in props}
        for pid in _FLAGS:
            if pid in props:
                conn[_CONN_NAMES[pid]] = bool(props[pid])
        _add_users(conn, props)
        connector["conn_properties"] = conn
        if s.will is not None:
            will_props = s.will.properties
            will = {name: will_props[pid] for pid, name in _WILL_NAMES.items() if pid in will_props}
            if "correlation_data" in will:  # bytes in the settings
                will["correlation_data"] = will["correlation_data"].decode(errors="replace")
            _add_users(will, will_props)
            connector["will_properties"] = will
    return connector


def _rule(rule, with_qos):
    out = {"remote_topic": rule.remote_topic, "local_topic": rule.local_topic}
    if with_qos:
        out["qos"] = rule.qos
    if rule.retain is not None:
        out["retain"] = rule.retain
    if rule.prefix:
        out["prefix"] = rule.prefix
    if rule.suffix:
        out["suffix"] = rule.suffix
    return out


def _sub_properties(props):
    out = {"identifier": props.get(p.SUBSCRIPTION_IDENTIFIER, 0)}
    _add_users(out, props)
    return out


def _add_users(out, props):
    users = props.get(p.USER_PROPERTY)
    if users:
        out["user_properties"] = [{"key": key, "value": value} for key, value in users]


def _tls(tls):
    if tls is None:
        return {
            "enable": False,
            "url": None,
            "key_password": None,
            "key": None,
            "cert": None,
            "cacert": None,
            "verify_peer": False,
            "fail_if_no_peer_cert": False,
        }
    return {
        "enable": True,
        "url": None,
        "key_password": _HIDDEN if tls.key_password else None,
        "key": None,
        "cert": None,
        "cacert": None,
        "verify_peer": tls.verify_peer,
        "fail_if_no_peer_cert": False,
        "keyfile": tls.keyfile or None,
        "certfile": tls.certfile or None,
        "cacertfile": tls.cacertfile or None,
    }


def _cache_json(settings):
    """NanoMQ's `bridge.sqlite`: where the bridges' offline cache is kept (see README "Bridge")."""
    store = settings.sqlite
    if store is None and settings.bridges is not None:
        store = settings.bridges.cache
    if store is None:
        # the in-memory cache's bound, per bridge
        return {
            "enable": False,
            "disk_cache_size": BridgeCacheSettings.disk_cache_size,
            "mounted_file_path": None,
        }
    return {
        "enable": True,
        "disk_cache_size": store.disk_cache_size,
        "flush_mem_threshold": store.flush_mem_threshold,
        "resend_interval": int(store.resend_interval * 1000),
        "mounted_file_path": store.mounted_file_path,
    }
