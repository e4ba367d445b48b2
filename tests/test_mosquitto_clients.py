"""Debian's mosquitto-clients (mosquitto_sub / mosquitto_pub) against the broker:
what a new user does first. Every process runs with a timeout."""

from __future__ import annotations

import queue
import shutil
import signal
import subprocess
import threading

import pytest
from mqtt_client import unique_id

SUB = shutil.which("mosquitto_sub")
STDBUF = shutil.which("stdbuf")  # line-buffered output through a pipe
PUB = shutil.which("mosquitto_pub")
TIMEOUT = 10

pytestmark = pytest.mark.skipif(
    SUB is None or PUB is None or STDBUF is None,
    reason="mosquitto_sub / mosquitto_pub (Debian package mosquitto-clients) or stdbuf not installed",
)


class MosquittoSub:
    """mosquitto_sub running in the background with -d, so the test can wait for its SUBACK."""

    def __init__(self, broker, *args, wait_subscribed=True):
        # -W: the process ends by itself after TIMEOUT seconds even if a test fails before finish().
        command = [
            STDBUF,
            "-oL",
            SUB,
            "-h",
            broker.host,
            "-p",
            str(broker.port),
            "-W",
            str(TIMEOUT),
            "-d",
            *args,
        ]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = queue.Queue()
        self.output = []  # message lines, debug lines left out
        threading.Thread(target=self._read, daemon=True).start()
        if wait_subscribed:
            self._wait_subscribed()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _wait_subscribed(self):
        while True:
            line = self.lines.get(timeout=TIMEOUT)
            assert line is not None, f"mosquitto_sub ended before subscribing: {self.proc.wait()}"
            if line.startswith("Subscribed (mid"):
                return

    def finish(self):
        """Wait for the process to exit by itself (-C, -E); returns its message lines."""
        try:
            code = self.proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        while (line := self.lines.get(timeout=TIMEOUT)) is not None:
            if not line.startswith(("Client ", "Subscribed (mid")):
                self.output.append(line)
        assert code == 0, f"mosquitto_sub exited with {code}: {self.output}"
        return self.output

    def kill(self, sig=signal.SIGKILL):
        self.proc.send_signal(sig)
        self.proc.wait(TIMEOUT)


def pub(broker, *args, stdin=None):
    result = subprocess.run(
        [PUB, "-h", broker.host, "-p", str(broker.port), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr


def test_sub_everything_verbose_sees_qos_0_1_2(broker):
    prefix = unique_id("mosq")
    sub = MosquittoSub(broker, "-t", "#", "-v", "-q", "2", "-R", "-C", "3")
    for qos in (0, 1, 2):
        pub(broker, "-t", f"{prefix}/q{qos}", "-m", f"hello {qos}", "-q", str(qos))
    assert sub.finish() == [f"{prefix}/q0 hello 0", f"{prefix}/q1 hello 1", f"{prefix}/q2 hello 2"]


@pytest.mark.parametrize("version", ["mqttv31", "mqttv311"])
def test_delivered_qos_is_min_of_sub_and_pub(broker, version):
    topic = unique_id("mosq-qos")
    sub = MosquittoSub(broker, "-V", version, "-t", topic, "-q", "1", "-C", "3", "-F", "%t %p q=%q r=%r")
    for qos in (0, 1, 2):
        pub(broker, "-V", version, "-t", topic, "-m", f"m{qos}", "-q", str(qos))
    assert sub.finish() == [f"{topic} m0 q=0 r=0", f"{topic} m1 q=1 r=0", f"{topic} m2 q=1 r=0"]


def test_retained_message_reaches_a_later_subscriber(broker):
    topic = unique_id("mosq-retain")
    pub(broker, "-t", topic, "-m", "kept", "-q", "1", "-r")
    sub = MosquittoSub(broker, "-t", topic, "-C", "1", "-F", "%t %p r=%r")
    assert sub.finish() == [f"{topic} kept r=1"]


def test_retained_message_is_replaced_and_cleared(broker):
    base = unique_id("mosq-clear")
    pub(broker, "-t", f"{base}/a", "-m", "old", "-r")
    pub(broker, "-t", f"{base}/a", "-m", "new", "-r")
    sub = MosquittoSub(broker, "-t", f"{base}/a", "-C", "1", "-F", "%p r=%r")
    assert sub.finish() == ["new r=1"]

    pub(broker, "-t", f"{base}/a", "-r", "-n")  # empty retained payload clears it
    sub = MosquittoSub(broker, "-t", f"{base}/#", "-C", "1", "-v")
    # Retained messages would come right after the SUBACK; the first message is this one.
    pub(broker, "-t", f"{base}/marker", "-m", "live")
    assert sub.finish() == [f"{base}/marker live"]


def test_count_stops_the_subscriber(broker):
    topic = unique_id("mosq-count")
    sub = MosquittoSub(broker, "-t", topic, "-C", "2", "-v")
    pub(broker, "-t", topic, "-l", stdin="one\ntwo\n")  # -l: one message per line
    assert sub.finish() == [f"{topic} one", f"{topic} two"]


def test_persistent_session_queues_while_offline(broker):
    client_id = unique_id("mosq-persist")
    topic = unique_id("mosq-persist-topic")
    # -c: clean session off; -E: exit as soon as the subscription is acknowledged.
    MosquittoSub(broker, "-c", "-i", client_id, "-q", "1", "-t", topic, "-E").finish()
    pub(broker, "-t", topic, "-m", "while away", "-q", "1")
    # The queued message may come before the SUBACK of the (repeated) subscription.
    sub = MosquittoSub(
        broker,
        "-c",
        "-i",
        client_id,
        "-q",
        "1",
        "-t",
        topic,
        "-C",
        "1",
        "-F",
        "%p q=%q",
        wait_subscribed=False,
    )
    assert sub.finish() == ["while away q=1"]


def test_will_of_a_killed_subscriber(broker):
    will_topic = unique_id("mosq-will")
    watcher = MosquittoSub(broker, "-t", will_topic, "-q", "2", "-C", "1", "-F", "%t %p q=%q")
    victim = MosquittoSub(
        broker,
        "-t",
        unique_id("mosq-idle"),
        "--will-topic",
        will_topic,
        "--will-payload",
        "gone",
        "--will-qos",
        "1",
    )
    victim.kill()
    assert watcher.finish() == [f"{will_topic} gone q=1"]


def test_large_payload_from_a_file(broker, tmp_path):
    topic = unique_id("mosq-file")
    payload = "".join(chr(33 + n % 90) for n in range(200_000))
    path = tmp_path / "payload.txt"
    path.write_text(payload)
    sub = MosquittoSub(broker, "-t", topic, "-C", "1", "-F", "%l")
    pub(broker, "-t", topic, "-f", str(path), "-q", "1")
    assert sub.finish() == [str(len(payload))]
