"""Micro-benchmark of the codec's per-message paths: FrameReader.feed on PUBLISH streams and encode_publish_parts.

Run from the repository root: ``python bench/micro_codec.py [count]``.  Prints microseconds per
packet; the numbers are for comparing codec changes on one machine, not pass/fail thresholds.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nanomq_py.mqtt import properties as P  # noqa: E402
from nanomq_py.mqtt.codec import FrameReader, encode, encode_publish_parts  # noqa: E402
from nanomq_py.mqtt.packets import Publish  # noqa: E402

CHUNK = 64 * 1024
TOPIC = "sensors/room1/temperature"
PAYLOAD = b"x" * 32


def time_decode(version: int, qos: int, count: int) -> float:
    """Microseconds per PUBLISH when a stream of them is fed in 64 KiB chunks."""
    frame = encode(Publish(TOPIC, PAYLOAD, qos, packet_id=1 if qos else 0), version)
    stream = frame * count
    chunks = [stream[index : index + CHUNK] for index in range(0, len(stream), CHUNK)]
    reader = FrameReader(version=version)
    started = time.perf_counter()
    decoded = sum(len(reader.feed(chunk)) for chunk in chunks)
    elapsed = time.perf_counter() - started
    assert decoded == count
    return elapsed / count * 1e6


def time_encode(version: int, qos: int, count: int) -> float:
    """Microseconds per encode_publish_parts call."""
    props = {P.MESSAGE_EXPIRY_INTERVAL: 60} if version == 5 else P.NO_PROPERTIES
    started = time.perf_counter()
    for _ in range(count):
        encode_publish_parts(version, TOPIC, PAYLOAD, qos, False, False, props)
    return (time.perf_counter() - started) / count * 1e6


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    for version in (4, 5):
        for qos in (0, 1):
            print(
                f"v{version} qos{qos}: decode {time_decode(version, qos, count):.2f} us/packet, "
                f"encode_publish_parts {time_encode(version, qos, count):.2f} us/packet"
            )


if __name__ == "__main__":
    main()
