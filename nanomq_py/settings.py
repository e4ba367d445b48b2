"""Typed, validated settings with their defaults: the only shape of configuration
the rest of the broker sees.

`nanomq_py.config` builds a `Settings` from HOCON, environment variables and
CLI flags; everything else reads these plain dataclasses and never raw HOCON.
Durations are floats in seconds, sizes are ints in bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_PID_FILE = "/tmp/nanomq/nanomq.pid"


@dataclass
class TlsSettings:
    """TLS material for an `ssl`/`wss` listener."""

    keyfile: str = ""
    certfile: str = ""
    cacertfile: str = ""
    key_password: str = ""
    verify_peer: bool = False
    fail_if_no_peer_cert: bool = False


@dataclass
class ListenerSettings:
    """One listening socket. `kind` is tcp | ssl | ws | wss."""

    kind: str = "tcp"
    name: str = "default"
    host: str = "0.0.0.0"
    port: int = 1883
    path: str = ""  # WebSocket path, e.g. "/mqtt"; empty for tcp/ssl
    tls: TlsSettings | None = None


@dataclass
class MqttSettings:
    """The `mqtt { ... }` block plus the limits that protect the broker."""

    max_packet_size: int = 10 * 1024 * 1024
    max_mqueue_len: int = 1024
    retry_interval: float = 10.0
    keepalive_multiplier: float = 1.5
    max_keepalive: int = 0  # seconds; 0: any. v5 clients get Server Keep Alive, v3 asking more are refused
    max_inflight_window: int = 2048
    max_awaiting_rel: int = 2048
    await_rel_timeout: float = 300.0
    max_topic_alias: int = 0
    property_size: int = 32
    max_qos: int = 2
    retain_available: bool = True
    wildcard_subscription: bool = True
    shared_subscription: bool = True
    session_expiry_interval: float = 0.0  # v3.x persistent sessions end this long after disconnect; 0: never
    max_session_expiry_interval: float = 0.0  # cap on what v5 clients ask for; 0: no cap
    max_connections: int = 0  # 0: unlimited
    connect_timeout: float = 30.0
    max_topic_levels: int = 128
    max_subscriptions: int = 0  # per client, 0: unlimited
    max_outgoing_bytes: int = 4 * 1024 * 1024  # per connection write buffer before drop


@dataclass
class AclRule:
    """One ACL rule. `who` is a tuple describing the selector:
    ("all",) | ("username", name) | ("clientid", id) | ("ipaddr", cidr)
    | ("and", [who, ...]) | ("or", [who, ...])."""

    permit: str = "allow"  # allow | deny
    who: tuple = ("all",)
    action: str = "pubsub"  # publish | subscribe | pubsub
    topics: list[str] = field(default_factory=list)  # empty: every topic


@dataclass
class HttpAuthRequest:
    url: str = ""
    method: str = "post"  # get | post
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class HttpAuthSettings:
    auth_req: HttpAuthRequest | None = None
    super_req: HttpAuthRequest | None = None
    acl_req: HttpAuthRequest | None = None
    timeout: float = 5.0
    connect_timeout: float = 5.0
    pool_size: int = 32
    cache_ttl: float = 60.0


@dataclass
class AuthSettings:
    allow_anonymous: bool = True
    no_match: str = "allow"  # allow | deny
    deny_action: str = "ignore"  # ignore | disconnect
    users: dict[str, str] = field(default_factory=dict)  # username -> password (plain or hashed)
    acl: list[AclRule] = field(default_factory=list)
    http_auth: HttpAuthSettings | None = None


@dataclass
class LogSettings:
    to: list[str] = field(default_factory=lambda: ["console"])  # console | file | syslog
    level: str = "warn"  # trace | debug | info | warn | error | fatal
    dir: str = "/tmp"
    file: str = "nanomq.log"
    rotation_size: int = 10 * 1024 * 1024
    rotation_count: int = 5


WEBHOOK_CLIENT_EVENTS = (
    "on_client_connect",
    "on_client_connack",
    "on_client_connected",
    "on_client_disconnected",
    "on_client_subscribe",
    "on_client_unsubscribe",
    "on_session_subscribed",
    "on_session_unsubscribed",
    "on_session_terminated",
)
WEBHOOK_MESSAGE_EVENTS = (
    "on_message_publish",
    "on_message_delivered",
    "on_message_acked",
    "on_message_dropped",
)


@dataclass
class WebhookRule:
    """`{event = "on_message_publish", topic = "nmq/#"}`; topic only for message events."""

    event: str
    topic: str | None = None


@dataclass
class WebhookTls:
    cacertfile: str = ""
    certfile: str = ""
    keyfile: str = ""
    verify: bool = True


@dataclass
class WebhookSettings:
    url: str
    headers: dict[str, str] = field(default_factory=dict)  # sent as written, in order
    encoding: str = "plain"  # plain | base64 | base62
    pool_size: int = 32
    cancel_timeout: float = 5.0  # seconds: connect and send timeout
    events: list[WebhookRule] = field(default_factory=list)
    tls: WebhookTls | None = None
    queue_size: int = 10000  # bounded hand-off queue
    max_retries: int = 3  # retries after the first try for 429, 5xx, connection errors
    retry_backoff: float = 0.1  # first back-off, doubled per retry
    drain_timeout: float = 5.0  # seconds spent draining the queue at stop


@dataclass
class Settings:
    listeners: list[ListenerSettings] = field(default_factory=lambda: [ListenerSettings()])
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    log: LogSettings = field(default_factory=LogSettings)
    webhook: WebhookSettings | None = None
    daemon: bool = False
    pid_file: str = DEFAULT_PID_FILE
    source: str = "<built-in defaults>"  # file the settings came from, for messages
