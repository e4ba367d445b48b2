"""The `webhook { }` section -> `WebhookSettings`, or None when disabled."""

from __future__ import annotations

from nanomq_py.settings import (
    WEBHOOK_CLIENT_EVENTS,
    WEBHOOK_MESSAGE_EVENTS,
    WebhookRule,
    WebhookSettings,
    WebhookTls,
)

from .context import object_list
from .values import (
    HTTP_URL_TEXT,
    boolean,
    duration,
    enum,
    existing_file,
    http_url,
    integer,
    require_topic_filter,
    string,
    string_map,
)

PAYLOAD_ENCODINGS = ("plain", "base64", "base62")
WEBHOOK_EVENTS = WEBHOOK_CLIENT_EVENTS + WEBHOOK_MESSAGE_EVENTS


def read_webhook(section):
    enabled = section.take("enable", boolean, True)
    if not enabled:
        section.seen.update(section.data)  # a disabled block is not checked further
        return None
    webhook = WebhookSettings(
        url=section.take("url", http_url, needed=HTTP_URL_TEXT),
        headers=section.take("headers", string_map, {}),
        pool_size=section.take("pool_size", integer(1), 32),
        cancel_timeout=section.take("cancel_timeout", duration(0, low_open=True, plain_unit="ms"), 5.0),
        events=section.take("events", _webhook_events, []),
        queue_size=section.take("queue_size", integer(1), 10000),
        max_retries=section.take("max_retries", integer(0), 3),
        retry_backoff=section.take("retry_backoff", duration(0), 0.1),
        drain_timeout=section.take("drain_timeout", duration(0), 5.0),
        per_client_order=section.take("per_client_order", boolean, False),
    )
    body = section.section("body")
    if body is not None:
        webhook.encoding = body.take("encoding", enum(PAYLOAD_ENCODINGS), "plain")
        body.finish()
    ssl = section.section("ssl")
    if ssl is not None:
        webhook.tls = WebhookTls(
            cacertfile=ssl.take("cacertfile", existing_file, ""),
            certfile=ssl.take("certfile", existing_file, ""),
            keyfile=ssl.take("keyfile", existing_file, ""),
            verify=ssl.take("verify", boolean, True),
        )
        ssl.finish()
    section.finish()
    return webhook


def _webhook_events(ctx, path, value):
    """Event rules; a topic narrows only message events, elsewhere it is dropped with a warning."""
    rules = []
    allowed = "expected a list of {event = ..., topic = ...} rules"
    for rule in object_list(ctx, path, value, allowed, "expected a rule {event = ..., topic = ...}"):
        event = rule.take(
            "event", enum(WEBHOOK_EVENTS), needed=f"expected one of {', '.join(WEBHOOK_EVENTS)}"
        )
        topic = rule.take("topic", _webhook_topic, None)
        rule.finish()
        if topic is not None and event not in WEBHOOK_MESSAGE_EVENTS:
            where, key = ctx.locate(rule.path + ("topic",))
            ctx.warn(f"{where}: {key} is ignored: a topic only applies to message events, not {event}")
            topic = None
        rules.append(WebhookRule(event=event, topic=topic))
    return rules


def _webhook_topic(ctx, path, value):
    topic = string(ctx, path, value)
    require_topic_filter(ctx, path, value, topic)
    return topic
