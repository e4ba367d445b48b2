"""The `auth { }` section (users, ACL rules, HTTP auth) -> `AuthSettings`.

ACL rules are checked here, topic filters and IP networks included, so a typo stops
the start instead of silently never matching.
"""

from __future__ import annotations

import ipaddress

from nanomq_py.settings import AclRule, AuthSettings, HttpAuthRequest, HttpAuthSettings

from .context import object_list
from .values import (
    HTTP_URL_TEXT,
    any_value,
    boolean,
    duration,
    enum,
    http_url,
    integer,
    nonempty_string,
    param_pairs,
    require_topic_filter,
    string_map,
)

_WHO_KEYS = ("ipaddr", "ipaddrs", "username", "clientid")


def read_auth(section):
    auth = AuthSettings(
        allow_anonymous=section.take("allow_anonymous", boolean, True),
        no_match=section.take("no_match", enum(("allow", "deny")), "allow"),
        deny_action=section.take("deny_action", enum(("ignore", "disconnect")), "ignore"),
        users=section.take("password", string_map, {}),
    )
    acl = section.section("acl")
    if acl is not None:
        auth.acl = acl.take("rules", _acl_rules, [])
        acl.finish()
    http_auth = section.section("http_auth")
    if http_auth is not None:
        auth.http_auth = _http_auth(http_auth)
    section.finish()
    return auth


# --------------------------------------------------------------------------- ACL


def _acl_rules(ctx, path, value):
    allowed = "expected a list of rules [ {permit = allow, ...}, ... ]"
    rules = object_list(ctx, path, value, allowed, "expected a rule {permit = allow|deny, ...}")
    return [_acl_rule(rule) for rule in rules]


def _acl_rule(rule):
    permit = rule.take("permit", enum(("allow", "deny")), needed="every rule needs permit = allow or deny")
    action = rule.take("action", enum(("publish", "subscribe", "pubsub")), "pubsub")
    topics = rule.take("topics", _acl_topics, [])
    selectors = [
        _who(rule.ctx, rule.path + (key,), key, rule.take(key, any_value))
        for key in _WHO_KEYS
        if rule.has(key)
    ]
    for op in ("and", "or"):
        if rule.has(op):
            selectors.append((op, _who_list(rule.ctx, rule.path + (op,), rule.take(op, any_value))))
    rule.finish()
    if not selectors:
        who = ("all",)
    elif len(selectors) == 1:
        who = selectors[0]
    else:
        who = ("and", selectors)
    return AclRule(permit=permit, who=who, action=action, topics=topics)


def _who(ctx, path, key, value):
    if key == "ipaddrs":
        if not isinstance(value, list) or not value:
            ctx.fail(path, value, "expected a list of IP addresses or networks")
        return ("or", [_who(ctx, path + (i,), "ipaddr", item) for i, item in enumerate(value)])
    text = nonempty_string(ctx, path, value)
    if text == "#":
        return ("all",)
    if key == "ipaddr":
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            ctx.fail(path, value, 'expected an IP address, a network such as 192.168.1.0/24, or "#"')
    return (key, text)


def _who_list(ctx, path, value):
    if not isinstance(value, list) or not value:
        ctx.fail(path, value, "expected a list of {username|clientid|ipaddr = ...} selectors")
    result = []
    for index, item in enumerate(value):
        keys = [k for k in _WHO_KEYS if isinstance(item, dict) and k in item]
        if len(keys) != 1 or len(item) != 1:
            ctx.fail(
                path + (index,), item, "expected one of {username = ...}, {clientid = ...}, {ipaddr = ...}"
            )
        result.append(_who(ctx, path + (index, keys[0]), keys[0], item[keys[0]]))
    return result


def _acl_topics(ctx, path, value):
    """Topic filters; a leading "@" means the filter is matched literally, wildcards included."""
    if not isinstance(value, list):
        ctx.fail(path, value, "expected a list of topic filters")
    topics = []
    for index, item in enumerate(value):
        topic = nonempty_string(ctx, path + (index,), item)
        require_topic_filter(ctx, path + (index,), item, topic.removeprefix("@"))
        topics.append(topic)
    return topics


# --------------------------------------------------------------------------- HTTP auth


def _http_auth(section):
    enabled = section.take("enable", boolean, True)
    settings = HttpAuthSettings(
        auth_req=_http_request(section.section("auth_req")),
        super_req=_http_request(section.section("super_req")),
        acl_req=_http_request(section.section("acl_req")),
        timeout=section.take("timeout", duration(0, low_open=True), 5.0),
        connect_timeout=section.take("connect_timeout", duration(0, low_open=True), 5.0),
        pool_size=section.take("pool_size", integer(1), 32),
        cache_ttl=section.take("cache_ttl", duration(0), 60.0),
    )
    section.finish()
    return settings if enabled else None


def _http_request(section):
    if section is None:
        return None
    request = HttpAuthRequest(
        url=section.take("url", http_url, needed=HTTP_URL_TEXT),
        method=section.take("method", enum(("get", "post")), "post"),
        headers=section.take("headers", string_map, {}),
        params=section.take("params", _http_params, {}),
    )
    section.finish()
    return request


def _http_params(ctx, path, value):
    if isinstance(value, str):  # the old form: "clientid=%c,username=%u"
        pairs = param_pairs(value)
        if any(not sep for _, sep, _ in pairs):
            ctx.fail(path, value, "expected {name = value, ...} or name=value,name=value")
        return {name.strip(): text.strip() for name, _, text in pairs}
    return string_map(ctx, path, value)
