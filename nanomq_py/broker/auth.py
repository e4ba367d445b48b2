"""Authentication (username/password) and authorisation (ACL rules).

Passwords are compared in constant time and may be stored hashed:
`sha256$<salt>$<hex>` (sha256 of salt + password) or
`pbkdf2_sha256$<iterations>$<salt>$<base64>` (Django's format). ACL rules are
NanoMQ's: tried in order, first match wins, `no_match` decides otherwise.
With no rules and no_match = allow the broker skips ACL work entirely.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress

from ..mqtt.topics import topic_matches

SUCCESS = "success"
BAD_CREDENTIALS = "bad_username_or_password"
NOT_AUTHORIZED = "not_authorized"


def password_matches(stored, given):
    """True if the password the client sent (bytes) matches the stored form."""
    if stored.startswith("pbkdf2_sha256$"):
        try:
            _, iterations, salt, digest = stored.split("$", 3)
            computed = hashlib.pbkdf2_hmac("sha256", given, salt.encode(), int(iterations))
            return hmac.compare_digest(base64.b64encode(computed).decode(), digest)
        except ValueError:
            return False
    if stored.startswith("sha256$"):
        try:
            _, salt, digest = stored.split("$", 2)
        except ValueError:
            return False
        computed = hashlib.sha256(salt.encode() + given).hexdigest()
        return hmac.compare_digest(computed, digest.lower())
    return hmac.compare_digest(stored.encode(), given)


class Authenticator:
    def __init__(self, settings):
        self.settings = settings
        self.rules = settings.acl
        # The common edge setup: nothing to check per publish/subscribe.
        self.open = not settings.acl and settings.no_match == "allow"

    def authenticate(self, username, password, client_id, peer_host):
        """"success", "bad_username_or_password" or "not_authorized" for a CONNECT."""
        users = self.settings.users
        if username is None:
            return SUCCESS if self.settings.allow_anonymous else NOT_AUTHORIZED
        if not users:
            return SUCCESS if self.settings.allow_anonymous else NOT_AUTHORIZED
        stored = users.get(username)
        if stored is None or password is None or not password_matches(stored, password):
            return BAD_CREDENTIALS
        return SUCCESS

    def may_publish(self, info, topic):
        return self.open or self.check(info, "publish", topic)

    def may_subscribe(self, info, flt):
        return self.open or self.check(info, "subscribe", flt)

    def check(self, info, action, topic):
        """First matching rule decides; no match -> auth.no_match."""
        for rule in self.rules:
            if rule.action != "pubsub" and rule.action != action:
                continue
            if not _who_matches(rule.who, info):
                continue
            if rule.topics and not any(_topic_rule_matches(t, topic, info) for t in rule.topics):
                continue
            return rule.permit == "allow"
        return self.settings.no_match == "allow"


def _who_matches(who, info):
    kind = who[0]
    if kind == "all":
        return True
    if kind == "username":
        return who[1] == "#" or (info.username is not None and who[1] == info.username)
    if kind == "clientid":
        return who[1] == "#" or who[1] == info.client_id
    if kind == "ipaddr":
        try:
            return ipaddress.ip_address(info.peer_host) in ipaddress.ip_network(who[1], strict=False)
        except ValueError:
            return False
    if kind == "and":
        return all(_who_matches(w, info) for w in who[1])
    if kind == "or":
        return any(_who_matches(w, info) for w in who[1])
    return False


def _topic_rule_matches(rule_topic, topic, info):
    """`@a/+` matches only the literal `a/+`; `${clientid}`/`${username}` are filled in."""
    if "${" in rule_topic:
        rule_topic = rule_topic.replace("${clientid}", info.client_id).replace(
            "${username}", info.username if info.username is not None else "${username}"
        )
    if rule_topic.startswith("@"):
        return rule_topic[1:] == topic
    return rule_topic == topic or topic_matches(rule_topic, topic)
