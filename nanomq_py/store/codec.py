"""Messages and wills as table columns and back. Deadlines are kept as wall-clock
times on disk (monotonic time restarts with the process) and as monotonic ones
in memory. Properties and subscription ids are `marshal`ed: builtin types only."""

from __future__ import annotations

import marshal
from time import monotonic, time

from ..broker.message import Message
from ..mqtt.properties import NO_PROPERTIES


def to_wall(deadline):
    return None if deadline is None else time() + (deadline - monotonic())


def to_monotonic(wall):
    return None if wall is None else monotonic() + (wall - time())


def pack(value):
    return marshal.dumps(value) if value else None


def unpack(blob, empty=None):
    return marshal.loads(blob) if blob is not None else empty


def message_columns(msg):
    """(topic, payload, props, from_client, from_user, expires) of a Message."""
    return (
        msg.topic,
        msg.payload,
        pack(msg.properties),
        msg.from_client_id,
        msg.from_username,
        to_wall(msg.expires_at),
    )


def message_from(topic, payload, qos, retain, props, from_client, from_user, expires):
    return Message(
        topic,
        bytes(payload),
        qos,
        bool(retain),
        unpack(props, NO_PROPERTIES),
        from_client or "",
        from_user,
        to_monotonic(expires),
    )


def pack_will(msg, delay):
    return marshal.dumps(
        (
            msg.topic,
            msg.payload,
            msg.qos,
            msg.retain,
            msg.properties or {},
            msg.from_client_id,
            msg.from_username,
            delay,
        )
    )


def unpack_will(blob):
    """(Message, delay) from `pack_will`."""
    topic, payload, qos, retain, props, from_client, from_user, delay = marshal.loads(blob)
    return Message(topic, payload, qos, retain, props or NO_PROPERTIES, from_client, from_user), delay
