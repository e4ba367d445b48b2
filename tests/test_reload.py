"""`nanomq reload`: the running broker re-reads its configuration (SIGHUP), applies
log and auth at once, keeps serving, and keeps its configuration when the file is bad."""

from __future__ import annotations

import pytest
from helpers_cli import run_nanomq, spawn_nanomq, write_conf
from mqtt_client import TestClient, unique_id
from raw_client import RawClient

BASE = """listeners.tcp.bind = "127.0.0.1:0"
log.level = info
auth {{
  allow_anonymous = false
  password = {{include "pwd.conf"}}
  acl = {{include "acl.conf"}}
}}
{extra}
"""
OPEN_ACL = 'rules = [{"permit": "allow"}]\n'


@pytest.fixture
def started(tmp_path):
    """(conf path, broker): `nanomq start --conf` with user alice (password "one"), any ACL."""
    (tmp_path / "pwd.conf").write_text('"alice": "one"\n')
    (tmp_path / "acl.conf").write_text(OPEN_ACL)
    conf = write_conf(tmp_path, BASE.format(extra=""))
    broker = spawn_nanomq(tmp_path, "start", "--conf", str(conf))
    yield conf, broker
    broker.stop()


def reload(tmp_path, broker, outcome="configuration reloaded"):
    result = run_nanomq(tmp_path, "reload")
    assert result.returncode == 0, result.stderr
    assert f"NanoMQ (pid {broker.proc.pid}) is reloading its configuration" in result.stdout
    return broker.wait_for_output(outcome)


def connack(broker, username, password):
    with RawClient(broker) as client:
        return client.connect(unique_id("r"), username=username, password=password).reason_code


def test_new_passwords_apply_to_new_connections_and_old_ones_stay(tmp_path, started):
    _, broker = started
    kept = RawClient(broker)
    assert kept.connect(unique_id("kept"), username="alice", password=b"one").reason_code == 0
    (tmp_path / "pwd.conf").write_text('"bob": "two"\n')
    reload(tmp_path, broker)
    assert connack(broker, "bob", b"two") == 0
    assert connack(broker, "alice", b"one") == 4  # bad user name or password
    kept.ping()  # the connection made before the reload goes on
    kept.close()


def test_a_new_acl_applies_to_connected_clients(tmp_path, started):
    _, broker = started
    reader = TestClient(broker)
    reader.paho.username_pw_set("alice", "one")
    reader.connect()
    reader.subscribe("t/#", 1)
    writer = RawClient(broker)
    assert writer.connect(unique_id("w"), username="alice", password=b"one").reason_code == 0
    writer.publish_acked("t/before", b"1")
    assert [m.topic for m in reader.expect(1)] == ["t/before"]
    (tmp_path / "acl.conf").write_text(
        'rules = [{"permit": "deny", "action": "publish", "topics": ["t/x"]}, {"permit": "allow"}]\n'
    )
    reload(tmp_path, broker)
    writer.publish_acked("t/x", b"2")  # 3.1.1: acknowledged, not delivered
    writer.publish_acked("t/after", b"3")
    assert [m.topic for m in reader.expect(1)] == ["t/after"]
    writer.close()
    reader.disconnect()


def test_a_bad_file_changes_nothing(tmp_path, started):
    conf, broker = started
    conf.write_text(BASE.format(extra="mqtt.max_packet_size = banana"))
    (tmp_path / "pwd.conf").write_text('"bob": "two"\n')
    reload(tmp_path, broker, "reload refused, the running configuration is kept: .*max_packet_size")
    assert connack(broker, "alice", b"one") == 0
    assert connack(broker, "bob", b"two") == 4


def test_what_needs_a_restart_is_named(tmp_path, started):
    conf, broker = started
    conf.write_text(BASE.format(extra="mqtt.max_mqueue_len = 10"))
    reload(tmp_path, broker, r"reload: mqtt changed; that applies on restart")
    assert connack(broker, "alice", b"one") == 0


def test_reload_with_nothing_running_says_so(tmp_path):
    result = run_nanomq(tmp_path, "reload")
    assert result.returncode == 1
    assert "There is no running NanoMQ instance." in result.stderr
