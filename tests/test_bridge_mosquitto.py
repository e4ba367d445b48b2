"""bridges.mqtt to a real Mosquitto (3.1.1): topic mapping both ways, QoS 0/1/2, outages made
real by a TCP proxy that cuts the link and by restarting Mosquitto, loops, TLS, presence.

Paho clients on both sides; the edge broker is a real nanomq_py process."""

from __future__ import annotations

import json

import pytest
from bridge_support import (
    API_CONF,
    BridgeApi,
    Mosquitto,
    TcpProxy,
    bridge_conf,
    count_lines,
    free_port,
    wait_for_count,
)
from certs import make_certs

TIMEOUT = 20


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory):
    upstream = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield upstream
    upstream.stop()


def start_edge(broker_factory, conf, name="up", subscribed=False):
    edge = broker_factory(API_CONF + conf)
    edge.wait_for_output(rf"bridge {name}: connected to", timeout=TIMEOUT)
    if subscribed:
        edge.wait_for_output(rf"bridge {name}: subscribed upstream", timeout=TIMEOUT)
    return edge


def certs_in(tmp_path, name):
    (tmp_path / name).mkdir()
    return make_certs(tmp_path / name)


def drain(client, count):
    return [(m.topic, m.payload, m.qos, m.retain) for m in client.expect(count, timeout=TIMEOUT)]


def test_forwards_map_topics_and_keep_each_qos(mosquitto, broker_factory, clients):
    rules = """
      forwards = [
        { local_topic = "sensors/+/temp", remote_topic = "site1/+/t" },
        { local_topic = "sensors/#", remote_topic = "site1/all/#", prefix = "edge/", suffix = "/raw" },
        { local_topic = "alarm", remote_topic = "site1/alarm", qos = 1, retain = true }
      ]
    """
    edge = start_edge(broker_factory, bridge_conf("up", mosquitto.port, rules))
    remote = clients(mosquitto)
    remote.subscribe("#", 2)
    local = clients(edge)
    for qos in (0, 1, 2):
        local.publish("sensors/kitchen/temp", f"t{qos}".encode(), qos=qos)
    local.publish("sensors/a/b/c", b"deep", qos=1)
    local.publish("sensors", b"root", qos=1)
    local.publish("alarm", b"fire", qos=0)
    got = drain(remote, 6)
    first = [g for g in got if g[0] == "site1/kitchen/t"]
    assert [(g[1], g[2]) for g in first] == [(b"t0", 0), (b"t1", 1), (b"t2", 2)]
    assert ("edge/site1/all/a/b/c/raw", b"deep", 1, False) in got
    assert ("edge/site1/all/raw", b"root", 1, False) in got
    assert ("site1/alarm", b"fire", 1, False) in got  # qos and retain overridden, retain delivered live
    assert all(not topic.startswith("sensors") for topic, *_ in got)


def test_subscription_maps_remote_topics_locally(mosquitto, broker_factory, clients):
    rules = """
      subscription = [
        { remote_topic = "cmd/edge1/#", local_topic = "local/cmd/#", qos = 2 },
        { remote_topic = "cfg/+", local_topic = "", prefix = "from-cloud/", qos = 1 }
      ]
    """
    edge = start_edge(broker_factory, bridge_conf("up", mosquitto.port, rules), subscribed=True)
    local = clients(edge)
    local.subscribe("#", 2)
    remote = clients(mosquitto)
    remote.publish("cmd/edge1/reboot", b"now", qos=2)
    remote.publish("cmd/edge1/led/on", b"1", qos=1)
    remote.publish("cfg/rate", b"5", qos=0)
    got = drain(local, 3)
    assert ("local/cmd/reboot", b"now", 2, False) in got
    assert ("local/cmd/led/on", b"1", 1, False) in got
    assert ("from-cloud/cfg/rate", b"5", 0, False) in got


def test_forwards_and_subscription_over_the_same_topics_give_one_copy_each_side(
    mosquitto, broker_factory, clients
):
    """MQTT 3.1.1 has no No Local: the bridge drops the echo of what it sent itself."""
    rules = """
      forwards = [ { local_topic = "loop/#", remote_topic = "loop/#", qos = 1 } ]
      subscription = [ { remote_topic = "loop/#", local_topic = "loop/#", qos = 1 } ]
    """
    edge = start_edge(broker_factory, bridge_conf("up", mosquitto.port, rules), subscribed=True)
    local_sub = clients(edge)
    local_sub.subscribe("loop/#", 1)
    remote_sub = clients(mosquitto)
    remote_sub.subscribe("loop/#", 1)
    local_pub = clients(edge)
    remote_pub = clients(mosquitto)

    local_pub.publish("loop/a", b"from-edge", qos=1)
    assert drain(remote_sub, 1) == [("loop/a", b"from-edge", 1, False)]
    remote_pub.publish("loop/b", b"from-cloud", qos=1)
    assert drain(remote_sub, 1) == [("loop/b", b"from-cloud", 1, False)]
    # Markers that travel the bridge after anything a loop would have sent on the same path.
    remote_pub.publish("loop/marker", b"down", qos=1)
    local_seen = []
    while ("loop/marker", b"down") not in local_seen:
        message = local_sub.messages.get(timeout=TIMEOUT)
        local_seen.append((message.topic, message.payload))
    assert local_seen == [("loop/a", b"from-edge"), ("loop/b", b"from-cloud"), ("loop/marker", b"down")]
    local_pub.publish("loop/marker2", b"up", qos=1)
    remote_seen = []
    while ("loop/marker2", b"up") not in remote_seen:
        message = remote_sub.messages.get(timeout=TIMEOUT)
        remote_seen.append((message.topic, message.payload))
    # the remote copy of loop/marker, and the edge's marker: no loop/b (or loop/a) coming back
    assert remote_seen == [("loop/marker", b"down"), ("loop/marker2", b"up")]
    status = BridgeApi(edge).status("up")
    assert status["state"] == "connected"


@pytest.mark.parametrize("qos", [1, 2])
def test_a_cut_link_loses_nothing_acknowledged_and_keeps_order(mosquitto, broker_factory, clients, qos):
    """QoS 1: at least once across the cut. QoS 2 on a resumed session (clean_start = false):
    the messages in flight are sent again with DUP, those past PUBREC get their PUBREL again,
    so each arrives exactly once."""
    proxy = TcpProxy(mosquitto.port)
    try:
        rules = f'forwards = [ {{ local_topic = "cut/#", remote_topic = "", qos = {qos} }} ]\n clean_start = false'
        edge = start_edge(broker_factory, bridge_conf("up", proxy.port, rules))
        api = BridgeApi(edge)
        presence = clients(edge)
        presence.subscribe("$SYS/brokers/client_status/edge-up", 0)
        remote = clients(mosquitto)
        remote.subscribe("cut/#", qos)
        local = clients(edge)
        sent = 0

        def publish(count):
            nonlocal sent
            for _ in range(count):
                sent += 1
                local.publish(f"cut/{sent % 3}", str(sent).encode(), qos=1)  # waits for the PUBACK

        publish(100)
        proxy.cut()
        edge.wait_for_output(r"bridge up: down", timeout=TIMEOUT)
        offline = json.loads(presence.expect(1, timeout=TIMEOUT)[0].payload)
        assert (offline["status"], offline["client_id"]) == ("offline", "edge-up")
        publish(150)  # acknowledged locally while the link is down: they wait in the cache
        cached = api.status("up")
        assert cached["state"] in ("down", "connecting") and cached["cached"] >= 100
        proxy.restore()
        publish(50)
        arrived = {}
        duplicates = 0
        while sum(len(v) for v in arrived.values()) < sent:
            message = remote.messages.get(timeout=TIMEOUT)
            seq = int(message.payload)
            per_topic = arrived.setdefault(message.topic, [])
            if seq in per_topic:
                duplicates += 1  # QoS 1 after a cut: at least once
                continue
            per_topic.append(seq)
        for topic, seqs in arrived.items():
            assert seqs == sorted(seqs), f"{topic} out of order"
        assert sorted(s for seqs in arrived.values() for s in seqs) == list(range(1, sent + 1))
        status = api.wait_for("up", lambda s: s["forwarded"] >= sent and s["inflight"] == 0)
        assert (status["forwarded"], status["cached"], status["dropped"]) == (sent, 0, 0)
        assert status["connects"] >= 2
        online = [json.loads(m.payload)["status"] for m in presence.expect(1, timeout=TIMEOUT)]
        assert online == ["online"]
        assert count_lines(edge, r"bridge up: connected to .*session present: True") >= 1
        if qos == 2:
            assert duplicates == 0
        print(f"cut link QoS {qos}: sent={sent} acked={sent} arrived={sent} lost=0 duplicates={duplicates}")
    finally:
        proxy.close()


def test_a_hung_upstream_does_not_hold_up_local_traffic(mosquitto, broker_factory, clients):
    """The upstream reads nothing and acknowledges nothing: local publishers and subscribers
    go on; QoS 1 waits in the cache, QoS 0 beyond the bridge's bounded queue is dropped."""
    proxy = TcpProxy(mosquitto.port)
    try:
        rules = 'forwards = [ { local_topic = "hung/#", remote_topic = "" } ]\n keepalive = 60s'
        edge = start_edge(broker_factory, bridge_conf("up", proxy.port, rules))
        api = BridgeApi(edge)
        proxy.freeze()
        local_sub = clients(edge)
        local_sub.subscribe("hung/#", 1)
        local = clients(edge)
        big = b"x" * 65536
        for index in range(300):
            local.publish("hung/q0", big, qos=0, wait=False)
            local.publish("hung/q1", str(index).encode(), qos=1)
        got = local_sub.expect(600, timeout=TIMEOUT)
        assert sum(1 for m in got if m.topic == "hung/q1") == 300
        status = api.status("up")
        # Nothing acknowledged upstream: every QoS 1 message is cached (at most 20 in flight);
        # every QoS 0 one was written to the link, waits in the bridge's bounded queue, or was dropped.
        assert (status["state"], status["cached"]) == ("connected", 300) and status["inflight"] <= 20
        assert status["forwarded"] + status["queued_qos0"] + status["dropped"] == 300
        proxy.freeze(False)
    finally:
        proxy.close()


def test_qos0_is_dropped_and_counted_while_the_link_is_down(mosquitto, broker_factory, clients):
    proxy = TcpProxy(mosquitto.port)
    try:
        rules = 'forwards = [ { local_topic = "q0/#", remote_topic = "" } ]'
        edge = start_edge(broker_factory, bridge_conf("up", proxy.port, rules))
        api = BridgeApi(edge)
        proxy.cut()
        edge.wait_for_output(r"bridge up: down", timeout=TIMEOUT)
        local = clients(edge)
        for index in range(20):
            local.publish("q0/x", str(index).encode(), qos=0)
        local.publish("q0/sync", b"", qos=1)  # after the QoS 0 ones on the same connection
        status = api.wait_for("up", lambda s: s["cached"] == 1)
        assert status["dropped"] == 20
        edge.wait_for_output(r"dropping QoS 0 messages")
    finally:
        proxy.close()


def test_an_upstream_restart_is_survived(tmp_path, broker_factory, clients):
    (tmp_path / "m").mkdir()
    upstream = Mosquitto(tmp_path / "m")
    proxy = TcpProxy(upstream.port)
    try:
        rules = 'forwards = [ { local_topic = "rs/#", remote_topic = "", qos = 2 } ]'
        edge = start_edge(broker_factory, bridge_conf("up", proxy.port, rules))
        remote = clients(upstream)
        remote.subscribe("rs/#", 2)
        local = clients(edge)
        for index in range(20):
            local.publish("rs/a", str(index).encode(), qos=1)
        assert [int(m.payload) for m in remote.expect(20, timeout=TIMEOUT)] == list(range(20))
        upstream.stop()
        edge.wait_for_output(r"bridge up: down", timeout=TIMEOUT)
        for index in range(20, 60):
            local.publish("rs/a", str(index).encode(), qos=2)
        proxy.cut()  # the bridge waits until the new upstream has its subscriber
        upstream.start()
        remote = clients(upstream)
        remote.subscribe("rs/#", 2)
        proxy.restore()
        got = [int(m.payload) for m in remote.expect(40, timeout=TIMEOUT)]
        assert got == list(range(20, 60))
        assert count_lines(edge, r"bridge up: connected to") >= 2
    finally:
        proxy.close()
        upstream.stop()


def test_tls_to_mosquitto(tmp_path, broker_factory, clients):
    certs = certs_in(tmp_path, "certs")
    tls_port = free_port()
    extra = f"listener {tls_port} 127.0.0.1\ncertfile {certs.server_cert}\nkeyfile {certs.server_key}\n"
    (tmp_path / "m").mkdir()
    plain = Mosquitto(tmp_path / "m", extra=extra)  # its first listener is plain, for the test's client
    try:
        rules = f"""
          forwards = [ {{ local_topic = "secure/#", remote_topic = "" }} ]
          ssl {{ cacertfile = "{certs.ca}" }}
        """
        edge = start_edge(broker_factory, bridge_conf("up", tls_port, rules, scheme="tls+mqtt-tcp"))
        remote = clients(plain)
        remote.subscribe("secure/#", 1)
        local = clients(edge)
        local.publish("secure/x", b"over tls", qos=1)
        assert drain(remote, 1) == [("secure/x", b"over tls", 1, False)]
    finally:
        plain.stop()


def test_a_wrong_ca_keeps_the_bridge_down_and_says_why(tmp_path, broker_factory):
    certs = certs_in(tmp_path, "certs")
    other = certs_in(tmp_path, "other")
    tls_port = free_port()
    extra = f"listener {tls_port} 127.0.0.1\ncertfile {certs.server_cert}\nkeyfile {certs.server_key}\n"
    (tmp_path / "m").mkdir()
    upstream = Mosquitto(tmp_path / "m", extra=extra)
    try:
        rules = f'ssl {{ cacertfile = "{other.ca}" }}'
        edge = broker_factory(bridge_conf("up", tls_port, rules, scheme="tls+mqtt-tcp"))
        edge.wait_for_output(r"bridge up: down \(.*(certificate|CERTIFICATE)", timeout=TIMEOUT)
    finally:
        upstream.stop()


def test_the_http_api_lists_bridges_as_nanomq(mosquitto, broker_factory):
    rules = 'forwards = [ { local_topic = "a/#", remote_topic = "b/#" } ]\n password = "secret"'
    edge = start_edge(broker_factory, bridge_conf("up", mosquitto.port, rules))
    api = BridgeApi(edge)
    code, body = api.get("/bridges")
    assert code == 200 and body["code"] == 0
    [bridge] = body["data"]["bridge"]["nodes"]  # NanoMQ's shape (conf_api.c get_bridge_config)
    assert (bridge["name"], bridge["enable"], bridge["parallel"]) == ("up", True, 1)
    assert bridge["connector"] == {
        "server": f"mqtt-tcp://127.0.0.1:{mosquitto.port}",
        "proto_ver": 4,
        "clientid": "edge-up",
        "clean_start": True,
        "username": None,
        "password": "******",
        "keepalive": 10,
    }
    assert bridge["forwards"] == [{"remote_topic": "b/#", "local_topic": "a/#"}]
    assert bridge["subscription"] == []
    assert bridge["tls"]["enable"] is False
    assert body["data"]["bridge"]["sqlite"]["enable"] is False  # the cache is in memory
    assert "secret" not in json.dumps(body)
    assert bridge["status"]["state"] == "connected"
    one = api.node("up")  # /bridges/{name}: the same node alone
    assert {k: v for k, v in one.items() if k != "status"} == {
        k: v for k, v in bridge.items() if k != "status"
    }
    code, body = api.get("/bridges/nope")  # as NanoMQ: no such bridge is an empty list
    assert code == 200 and body["code"] == 0 and body["data"]["bridge"]["nodes"] == []


def test_transparent_mirrors_local_subscriptions_upstream(mosquitto, broker_factory, clients):
    edge = start_edge(broker_factory, bridge_conf("up", mosquitto.port, "transparent = true"))
    api = BridgeApi(edge)
    local = clients(edge)
    local.subscribe("tp/marker", 1)
    local.subscribe("tp/mirror/#", 1)
    wait_for_count(edge, r"bridge up: subscribed upstream to 1 filters", 2)
    remote = clients(mosquitto)
    remote.publish("tp/mirror/x", b"down", qos=1)
    assert drain(local, 1) == [("tp/mirror/x", b"down", 1, False)]
    local.unsubscribe("tp/mirror/#")
    edge.wait_for_output(r"bridge up: unsubscribed upstream", timeout=TIMEOUT)
    before = api.status("up")["received"]
    remote.publish("tp/mirror/y", b"not for the edge any more", qos=1)
    remote.publish("tp/marker", b"after it", qos=1)  # same upstream connection, later
    assert drain(local, 1) == [("tp/marker", b"after it", 1, False)]
    assert api.status("up")["received"] == before + 1
    local.disconnect()  # a clean session ends: its subscriptions are no longer mirrored either
    wait_for_count(edge, r"bridge up: unsubscribed upstream", 2)


def test_hybrid_servers_fail_over_to_the_next_server(mosquitto, broker_factory, clients):
    dead = free_port()  # nothing listens there
    rules = (
        f'hybrid_servers = ["mqtt-tcp://127.0.0.1:{mosquitto.port}"]\n'
        ' forwards = [ { local_topic = "hy/#", remote_topic = "" } ]'
    )
    edge = start_edge(broker_factory, bridge_conf("up", dead, rules))
    assert BridgeApi(edge).status("up")["server"] == f"mqtt-tcp://127.0.0.1:{mosquitto.port}"
    remote = clients(mosquitto)
    remote.subscribe("hy/#", 1)
    clients(edge).publish("hy/x", b"via the second server", qos=1)
    assert drain(remote, 1) == [("hy/x", b"via the second server", 1, False)]


def test_subscriptions_are_made_again_after_a_cut(mosquitto, broker_factory, clients):
    proxy = TcpProxy(mosquitto.port)
    try:
        rules = 'subscription = [ { remote_topic = "again/#", local_topic = "", qos = 1 } ]'
        edge = start_edge(broker_factory, bridge_conf("up", proxy.port, rules), subscribed=True)
        local = clients(edge)
        local.subscribe("again/#", 1)
        proxy.cut()
        edge.wait_for_output(r"bridge up: down", timeout=TIMEOUT)
        proxy.restore()
        wait_for_count(edge, r"bridge up: subscribed upstream", 2)  # clean start: a new session
        clients(mosquitto).publish("again/x", b"after the cut", qos=1)
        assert drain(local, 1) == [("again/x", b"after the cut", 1, False)]
    finally:
        proxy.close()
