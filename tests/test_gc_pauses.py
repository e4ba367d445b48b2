"""Full garbage collections while messages pile up in a session's queue.

A full collection stops the event loop for as long as it takes to scan every
object, and under a QoS 1 load into a long queue those objects are mostly the
queued messages: with CPython's default thresholds one ran about every second
of such a load, each stalling every other client for tens of milliseconds.
Counted here, not timed: a hook in the broker process (sitecustomize, through
PYTHONPATH) writes the number of full collections to a file after each one.
"""

from __future__ import annotations

import os

from broker_process import REPO
from raw_client import RawClient

QUEUED = 100_000  # QoS 1 messages queued for an offline persistent session
WINDOW = 1000  # PUBLISHes in flight

_HOOK = """
import gc, os

_path = os.environ["NANOMQ_TEST_FULL_GC_FILE"]
_full = [0]


def _count(phase, info):
    if phase == "stop" and info["generation"] == 2:
        _full[0] += 1
        with open(_path, "w") as f:
            f.write(str(_full[0]))


gc.callbacks.append(_count)
with open(_path, "w") as f:
    f.write("0")  # the hook is loaded
"""


def _full_collections(path):
    return int(path.read_text())


def _publish_acked(client, topic, count):
    """`count` QoS 1 PUBLISHes, WINDOW in flight, until every PUBACK is back."""
    name = topic.encode()
    head = len(name).to_bytes(2, "big") + name
    payload = b"x" * 64
    sent = acked = 0
    buffered = b""
    while acked < count:
        burst = []
        while sent < count and sent - acked < WINDOW:
            sent += 1
            rest = head + (sent % 65535 + 1).to_bytes(2, "big") + payload
            burst.append(b"\x32" + bytes([len(rest)]) + rest)
        if burst:
            client.send_bytes(b"".join(burst))
        chunk = client.sock.recv(65536)
        assert chunk, "the broker closed the publisher's connection"
        buffered += chunk
        acked += len(buffered) // 4  # PUBACKs, 4 bytes each
        buffered = buffered[len(buffered) // 4 * 4 :]


def test_a_long_queue_filling_up_triggers_no_full_collection(tmp_path, broker_factory):
    hook_dir = tmp_path / "hook"
    hook_dir.mkdir()
    (hook_dir / "sitecustomize.py").write_text(_HOOK)
    count_file = tmp_path / "full_collections"
    broker = broker_factory(
        f"mqtt {{ max_mqueue_len = {2 * QUEUED} }}\n",
        env={
            "PYTHONPATH": str(hook_dir) + os.pathsep + str(REPO),
            "NANOMQ_TEST_FULL_GC_FILE": str(count_file),
        },
    )
    with RawClient(broker) as sub:
        sub.connect("gc-sub", clean=False)
        assert sub.subscribe(("gc/queue", 1)) == [1]
        sub.disconnect()
    with RawClient(broker) as pub:
        pub.connect("gc-pub")
        pub.ping()
        before = _full_collections(count_file)
        _publish_acked(pub, "gc/queue", QUEUED)
        pub.ping()
        during = _full_collections(count_file) - before
    assert during == 0, f"{during} full collections while {QUEUED} messages were queued"
