"""`GET /api/v4/bridges` and `/api/v4/bridges/{name}`: each bridge's configuration in NanoMQ's
field names, plus `status`, ours: its state, since when, the last error and its counters.
The password is never shown."""

from __future__ import annotations

from time import gmtime, strftime

from .api import SUCCEED, UNKNOWN_MISTAKE, Refused


def bridge_routes(api):
    """The routes to add to an Api's table."""

    def list_bridges(query):
        return {"code": SUCCEED, "bridges": [_bridge_json(b) for b in api.broker.bridges.values()]}

    def one_bridge(query, name):
        bridge = api.broker.bridges.get(name)
        if bridge is None:
            raise Refused(404, UNKNOWN_MISTAKE, f"no bridge {name!r}")
        return {"code": SUCCEED, "bridge": _bridge_json(bridge)}

    return {("GET", ("bridges",)): list_bridges, ("GET", ("bridges", None)): one_bridge}


def _bridge_json(bridge):
    s = bridge.settings
    scheme, host, port = s.servers[0]
    status = bridge.counters()
    status["since"] = strftime("%Y-%m-%dT%H:%M:%SZ", gmtime(bridge.since))
    status["last_error"] = bridge.last_error
    status["server"] = "{}://{}:{}".format(*bridge.server)
    return {
        "name": s.name,
        "enable": True,
        "parallel": 1,
        "server": f"{scheme}://{host}:{port}",
        "hybrid_servers": [f"{sc}://{h}:{p}" for sc, h, p in s.servers[1:]],
        "proto_ver": s.proto_ver,
        "clientid": s.clientid,
        "keepalive": int(s.keepalive),
        "clean_start": s.clean_start,
        "username": s.username,
        "forwards": [
            {"local_topic": r.local_topic, "remote_topic": r.remote_topic, "qos": r.qos} for r in s.forwards
        ],
        "subscription": [
            {"remote_topic": r.remote_topic, "local_topic": r.local_topic, "qos": r.qos}
            for r in s.subscription
        ],
        "status": status,
    }
