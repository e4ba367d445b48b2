"""Will messages: sent when a connection ends without a normal DISCONNECT.

A v5 Will Delay Interval holds the will on the session; it is cancelled if
the client reconnects to that session in time, and sent early if the
session ends first. The broker's one sweeper sends the due ones.
"""

from __future__ import annotations

from time import monotonic

from ..mqtt.properties import MESSAGE_EXPIRY_INTERVAL


def schedule_will(broker, session, will, reason):
    """Publish the will of a connection that just ended, now or after its delay."""
    msg, delay = will
    if delay and session.expiry_interval != 0 and reason != "server_shutdown":
        session.pending_will = msg
        session.will_at = monotonic() + delay
        broker.delayed_wills.add(session)
        return
    session.pending_will = msg
    publish_will(broker, session)


def cancel_will(broker, session):
    """The client came back within the delay: its old will is not sent."""
    session.pending_will = None
    session.will_at = None
    broker.delayed_wills.discard(session)


def publish_will(broker, session):
    msg = session.pending_will
    cancel_will(broker, session)
    if msg is None:
        return
    if broker.store is not None:
        broker.store.will_sent(session)
    expiry = msg.properties.get(MESSAGE_EXPIRY_INTERVAL)
    if expiry is not None:
        msg.expires_at = monotonic() + expiry  # the will's lifetime counts from its publication
    broker.route(msg, msg.from_client_id)
