"""Authentication (username/password, HTTP) and authorisation (ACL rules, HTTP).

Who may connect: a user listed in `auth.password` is checked against the stored
password; any other client is asked about over HTTP when `http_auth.auth_req`
is configured; otherwise anonymous clients follow `allow_anonymous` and unknown
usernames are refused. How stored passwords are checked is `passwords`'
job, imported only when a password file is configured (hashlib loads
OpenSSL: 3.7 MB of RSS on an idle broker that needs none of it); `ipaddress`
only when an ACL rule names an `ipaddr`.

What a client may do: NanoMQ's ACL rules, tried in order, first match wins; a
superuser (HTTP `super_req`, asked once at CONNECT) skips them; when no rule
matches, HTTP `acl_req` decides if configured, else `no_match`. With no rules, no HTTP and
no_match = allow the broker skips ACL work entirely (`open`).

Subscriptions are judged by what they could deliver (**ours**; NanoMQ
compares the filter as if it were a topic): an allow rule matches a filter
only if it covers every topic the filter matches, a deny rule matches if it
shares any topic with it. So `allow a/+` does not grant `a/#`, and
`deny secret/#` refuses `#`. `${clientid}`/`${username}` only match when the
value holds no `+`, `#` or `/`, so a client cannot widen its own pattern.

Cost: a check is one pass over the rules, each topic test linear in the
topic's length; callers cache verdicts per connection. HTTP checks and PBKDF2
hashes block only the calling client's greenlet (see http_auth, passwords).
"""

from __future__ import annotations

from ..mqtt.topics import split_shared, topic_matches

SUCCESS = "success"
BAD_CREDENTIALS = "bad_username_or_password"
NOT_AUTHORIZED = "not_authorized"
SERVER_BUSY = "server_busy"


class Authenticator:
    def __init__(self, settings):
        self.settings = settings
        self.rules = [_Rule(rule) for rule in settings.acl]
        self.no_match_allows = settings.no_match == "allow"
        self.http = _load_http_auth(settings.http_auth)
        http_acl = self.http is not None and self.http.has_acl
        # The common edge setup: nothing to check per publish/subscribe.
        self.open = not self.rules and self.no_match_allows and not http_acl
        # Verdicts from HTTP expire; callers that cache them must drop them this often.
        self.verdict_ttl = self.http.cache_ttl if http_acl else None
        # Handling a CONNECT or an ACL check may wait (HTTP, a password hash in
        # the thread pool): connections must then be served by greenlets.
        self.may_block = self.http is not None or any(
            stored.startswith("pbkdf2_sha256$") for stored in settings.users.values()
        )
        self._passwords = None
        if settings.users:
            from .passwords import PasswordChecker

            self._passwords = PasswordChecker()

    def authenticate(self, info, password, sockport=0):
        """SUCCESS, BAD_CREDENTIALS, NOT_AUTHORIZED or SERVER_BUSY for a CONNECT.
        May wait (this greenlet only) for a password hash or an HTTP answer."""
        settings = self.settings
        username = info.username
        if username is None and not settings.allow_anonymous:
            return NOT_AUTHORIZED
        stored = settings.users.get(username) if username is not None else None
        if stored is not None:
            try:
                return SUCCESS if self._password_ok(username, stored, password) else BAD_CREDENTIALS
            except OverflowError:  # too many CONNECTs already wait for a hash
                return SERVER_BUSY
        if self.http is not None and self.http.has_auth:
            return SUCCESS if self.http.authenticate(info, password, sockport) else NOT_AUTHORIZED
        if username is None:
            return SUCCESS
        if settings.users:
            return BAD_CREDENTIALS
        return SUCCESS if settings.allow_anonymous else NOT_AUTHORIZED

    def is_superuser(self, info, password, sockport=0):
        """Asked once per connection after a successful CONNECT: True skips every ACL check."""
        http = self.http
        return http is not None and http.has_super and http.is_superuser(info, password, sockport)

    def _password_ok(self, username, stored, password):
        return password is not None and self._passwords.matches(username, stored, password)

    def may_publish(self, client, topic):
        return self.open or client.superuser or self.check(client.info, "publish", topic)

    def may_subscribe(self, client, flt):
        return self.open or client.superuser or self.check(client.info, "subscribe", split_shared(flt)[1])

    def check(self, info, action, topic):
        """The first matching rule decides; no match -> HTTP acl_req if configured, else auth.no_match."""
        for rule in self.rules:
            verdict = rule.decide(info, action, topic)
            if verdict is not None:
                return verdict
        if self.http is not None and self.http.has_acl:
            return self.http.may(info, action, topic)
        return self.no_match_allows


def _load_http_auth(settings):
    """The HTTP authenticator, imported only when configured (it brings urllib3)."""
    if settings is None or not (settings.auth_req or settings.super_req or settings.acl_req):
        return None
    from .http_auth import HttpAuth

    return HttpAuth(settings)


class _Rule:
    """One compiled ACL rule: decide() -> True (allow), False (deny) or None (not this rule)."""

    __slots__ = ("allow", "who", "actions", "topics")

    def __init__(self, rule):
        self.allow = rule.permit == "allow"
        self.who = _compile_who(rule.who)
        self.actions = ("publish", "subscribe") if rule.action == "pubsub" else (rule.action,)
        self.topics = [_RuleTopic(t) for t in rule.topics]

    def decide(self, info, action, topic):
        if action not in self.actions or not _who_matches(self.who, info):
            return None
        if self.topics:
            subscribe = action == "subscribe"
            if not any(t.matches(topic, info, subscribe, self.allow) for t in self.topics):
                return None
        return self.allow


class _RuleTopic:
    """A rule's topic: `@literal`, or a filter possibly holding ${clientid}/${username}."""

    __slots__ = ("text", "literal", "templated")

    def __init__(self, text):
        self.literal = text.startswith("@")
        self.text = text[1:] if self.literal else text
        self.templated = "${" in self.text

    def matches(self, topic, info, subscribe, allow):
        pattern = self.text
        if self.templated:
            pattern = _fill_in(pattern, info)
            if pattern is None:
                return False
        if self.literal or pattern == topic:
            return pattern == topic
        if not subscribe:
            return topic_matches(pattern, topic)
        return filter_covers(pattern, topic) if allow else filters_overlap(pattern, topic)


def _fill_in(pattern, info):
    """The pattern with ${clientid}/${username} replaced, or None if a value is unusable."""
    for name, value in (("${clientid}", info.client_id), ("${username}", info.username)):
        if name in pattern:
            if not value or "+" in value or "#" in value or "/" in value:
                return None
            pattern = pattern.replace(name, value)
    return pattern


def filter_covers(rule, flt):
    """True if every topic matched by filter `flt` is matched by filter `rule`."""
    rule_levels = rule.split("/")
    levels = flt.split("/")
    if levels[0].startswith("$") and rule_levels[0] in ("+", "#"):
        return False
    for index, level in enumerate(rule_levels):
        if level == "#":
            return True
        if index >= len(levels):
            return False
        if level == "+":
            if levels[index] == "#":
                return False
        elif levels[index] != level:
            return False
    return len(rule_levels) == len(levels)


def filters_overlap(first, second):
    """True if some topic is matched by both filters."""
    a = first.split("/")
    b = second.split("/")
    if (a[0] in ("+", "#") and b[0].startswith("$")) or (b[0] in ("+", "#") and a[0].startswith("$")):
        return False
    for index in range(max(len(a), len(b))):
        x = a[index] if index < len(a) else None
        y = b[index] if index < len(b) else None
        if x == "#" or y == "#":
            return True
        if x is None or y is None:
            return False
        if x != y and x != "+" and y != "+":
            return False
    return True


def _compile_who(who):
    kind = who[0]
    if kind == "ipaddr":
        from ipaddress import ip_network

        return ("ipaddr", ip_network(who[1], strict=False))
    if kind in ("and", "or"):
        return (kind, [_compile_who(w) for w in who[1]])
    return who


def _who_matches(who, info):
    kind = who[0]
    if kind == "all":
        return True
    if kind == "username":
        return who[1] == "#" or (info.username is not None and who[1] == info.username)
    if kind == "clientid":
        return who[1] == "#" or who[1] == info.client_id
    if kind == "ipaddr":
        address = _peer_address(info)
        return address is not None and address.version == who[1].version and address in who[1]
    if kind == "and":
        return all(_who_matches(w, info) for w in who[1])
    if kind == "or":
        return any(_who_matches(w, info) for w in who[1])
    return False


def _peer_address(info):
    """Only called for `ipaddr` rules, which `_compile_who` already imported ipaddress for."""
    from ipaddress import ip_address

    try:
        address = ip_address(info.peer_host)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
