"""An application message inside the broker, and its cached wire forms.

A PUBLISH is encoded once per distinct wire form (protocol family, QoS, retain
flag, v5 per-subscriber properties) and the same bytes are handed to every
subscriber that needs that form; only the 2-byte packet id is spliced in per
subscriber for QoS 1/2. A message has at most a handful of forms, so the cache
is a small dict that lives as long as the message.
"""

from __future__ import annotations

from time import monotonic

from ..mqtt.codec import encode_publish_parts
from ..mqtt.properties import MESSAGE_EXPIRY_INTERVAL, NO_PROPERTIES, SUBSCRIPTION_IDENTIFIER, TOPIC_ALIAS


class Message:
    __slots__ = (
        "topic",
        "payload",
        "qos",
        "retain",
        "properties",
        "from_client_id",
        "from_username",
        "expires_at",
        "_forms",
    )

    def __init__(
        self,
        topic,
        payload,
        qos=0,
        retain=False,
        properties=NO_PROPERTIES,
        from_client_id="",
        from_username=None,
        expires_at=None,
    ):
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties  # v5 properties as received, topic alias removed
        self.from_client_id = from_client_id
        self.from_username = from_username
        self.expires_at = expires_at  # monotonic deadline from Message Expiry Interval, or None
        self._forms = None

    def expired(self, now=None):
        return self.expires_at is not None and (now or monotonic()) >= self.expires_at

    def wire_parts(self, v5, qos, retain, sub_ids=None, alias=0, alias_only=False):
        """(head, tail) of this message as a PUBLISH for one kind of subscriber.

        v3.1 and v3.1.1 share one wire form; v5 adds properties, which vary only
        with subscription identifiers, the remaining expiry interval and the
        outgoing topic alias (with the topic, or alone once the client knows it).
        Clients give aliases in the order they see topics, so subscribers of the
        same topics mostly share alias numbers and forms; at worst a message has
        one form per alias number in use for its topic.
        """
        props = NO_PROPERTIES
        if v5:
            props = self.properties
            if sub_ids or alias or self.expires_at is not None:
                props = dict(props)
                if sub_ids:
                    props[SUBSCRIPTION_IDENTIFIER] = list(sub_ids)
                if self.expires_at is not None:
                    props[MESSAGE_EXPIRY_INTERVAL] = max(0, int(self.expires_at - monotonic() + 0.999))
                if alias:
                    props[TOPIC_ALIAS] = alias
                key = (True, qos, retain, sub_ids, props.get(MESSAGE_EXPIRY_INTERVAL), alias, alias_only)
            else:
                key = (True, qos, retain)
        else:
            key = (False, qos, retain)
        forms = self._forms
        if forms is None:
            forms = self._forms = {}
        parts = forms.get(key)
        if parts is None:
            topic = "" if alias_only else self.topic
            parts = forms[key] = encode_publish_parts(
                5 if v5 else 4, topic, self.payload, qos, retain, False, props
            )
        return parts
