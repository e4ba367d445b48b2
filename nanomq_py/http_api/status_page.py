"""The live status page: `GET /` serves static/status.html (one self-contained
file: HTML, CSS and vanilla JS, nothing fetched from elsewhere, since the device
is often offline), which polls `GET /api/v4/status` every few seconds; both sit
behind the API's basic authentication.

The file is read from disk on each request, never imported or cached: an idle
broker holds none of it. The status answer is one pass over the sessions; the
client list stops at MAX_CLIENTS (the page says how many it left out), each
client's filters at MAX_FILTERS.
"""

from __future__ import annotations

import os
from time import monotonic

from nanomq_py import __version__

from ..broker.sys_stats import features, figures
from .document import Document

PAGE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static", "status.html")
MAX_CLIENTS = 500
MAX_FILTERS = 20


def page():
    with open(PAGE, "rb") as file:
        return Document("text/html; charset=utf-8", file.read())


def status(broker, started_at):
    """NanoMQ's answer shape ({"code": 0, "data": ...}) around what the page shows."""
    clients = broker.clients
    listed = []
    for client_id, session in broker.sessions.items():
        if len(listed) == MAX_CLIENTS:
            break
        client = clients.get(client_id)
        info = client.info if client is not None else session.info
        if info is None:
            continue
        filters = list(session.subscriptions)
        listed.append(
            {
                "client_id": client_id,
                "username": info.username or "",
                "address": f"{info.peer_host}:{info.peer_port}",
                "proto_name": "MQIsdp" if info.proto_ver == 3 else "MQTT",
                "proto_ver": info.proto_ver,
                "keepalive": info.keepalive,
                "connected": client is not None,
                "connected_at": info.connected_at,
                "subscriptions": len(filters),
                "filters": filters[:MAX_FILTERS],
            }
        )
    data = {
        "version": __version__,
        "uptime": int(monotonic() - started_at),
        "sys_interval": broker.settings.mqtt.sys_interval,
        "figures": figures(broker),
        "features": [
            {"section": section, "name": name, "counters": counters}
            for section, name, counters in features(broker)
        ],
        "clients": listed,
        "clients_total": len(broker.sessions),
    }
    return {"code": 0, "data": data}
