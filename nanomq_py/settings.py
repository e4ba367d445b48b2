"""Typed, validated settings with their defaults: the only shape of configuration
the rest of the broker sees.

`nanomq_py.config` builds a `Settings` from HOCON, environment variables and
CLI flags; everything else reads these plain objects and never raw HOCON.
Durations are floats in seconds, sizes are ints in bytes.

Each class lists its fields as annotated class attributes, the way a dataclass
would, and `_Fields` gives it what the broker used from dataclasses: construction
by position or keyword, `FIELDS` (the names, in order), equality and a repr. Not
dataclasses themselves: `dataclasses` imports inspect, ast, dis and tokenize,
about 1 MB of RSS in the running broker for nothing it needs. `to_data` and
`from_data` turn settings into builtin types and back, so the CLI can send them
from its configuration child with `marshal` (pickle would cost the broker 0.4 MB).
"""

from __future__ import annotations

DEFAULT_PID_FILE = "/tmp/nanomq/nanomq.pid"
_REQUIRED = object()


class _New:
    """A default built afresh for every instance (a list, a dict, a nested settings object)."""

    __slots__ = ("make",)

    def __init__(self, make):
        self.make = make


class _Fields:
    """Base of the settings classes: the annotated class attributes are the fields, in
    order; a class attribute is the field's default (a `_New` makes one per instance)
    and a field without one is required."""

    FIELDS: tuple[str, ...] = ()
    _DEFAULTS: tuple = ()
    _CLASSES: dict[str, type] = {}  # every settings class by name, for `from_data`
    __hash__ = None  # mutable and compared by value, as dataclasses are

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.FIELDS = tuple(cls.__dict__.get("__annotations__", ()))
        cls._DEFAULTS = tuple(cls.__dict__.get(name, _REQUIRED) for name in cls.FIELDS)
        _Fields._CLASSES[cls.__name__] = cls

    def __init__(self, *args, **kwargs):
        if len(args) > len(self.FIELDS):
            raise TypeError(f"{type(self).__name__}() takes at most {len(self.FIELDS)} positional arguments")
        for name, value in zip(self.FIELDS, args, strict=False):
            if name in kwargs:
                raise TypeError(f"{type(self).__name__}() got multiple values for argument {name!r}")
            kwargs[name] = value
        for name, default in zip(self.FIELDS, self._DEFAULTS, strict=True):
            value = kwargs.pop(name, default)
            if value is _REQUIRED:
                raise TypeError(f"{type(self).__name__}() missing required argument {name!r}")
            setattr(self, name, value.make() if type(value) is _New else value)
        if kwargs:
            raise TypeError(
                f"{type(self).__name__}() got an unexpected keyword argument {next(iter(kwargs))!r}"
            )

    def __eq__(self, other):
        if other.__class__ is not self.__class__:
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.FIELDS)

    def __repr__(self):
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS)
        return f"{type(self).__name__}({values})"


def to_data(value):
    """Settings -> nested tuples, lists, dicts and scalars (what `marshal` takes). A
    settings object becomes `(..., class name, field values in order)`: configuration
    values never hold an Ellipsis, so the tag cannot be confused with one."""
    if isinstance(value, _Fields):
        return (..., type(value).__name__, *(to_data(getattr(value, name)) for name in value.FIELDS))
    if isinstance(value, (list, tuple)):
        return type(value)(to_data(item) for item in value)
    if isinstance(value, dict):
        return {key: to_data(item) for key, item in value.items()}
    return value


def from_data(data):
    """The inverse of `to_data`."""
    if isinstance(data, tuple) and data and data[0] is ...:
        cls = _Fields._CLASSES[data[1]]
        return cls(*(from_data(item) for item in data[2:]))
    if isinstance(data, (list, tuple)):
        return type(data)(from_data(item) for item in data)
    if isinstance(data, dict):
        return {key: from_data(item) for key, item in data.items()}
    return data


class TlsSettings(_Fields):
    """TLS material for an `ssl`/`wss` listener."""

    keyfile: str = ""
    certfile: str = ""
    cacertfile: str = ""
    key_password: str = ""
    verify_peer: bool = False
    fail_if_no_peer_cert: bool = False


class ListenerSettings(_Fields):
    """One listening socket. `kind` is tcp | ssl | ws | wss."""

    kind: str = "tcp"
    name: str = "default"
    host: str = "0.0.0.0"
    port: int = 1883
    path: str = ""  # WebSocket path, e.g. "/mqtt"; empty for tcp/ssl
    tls: TlsSettings | None = None


class MqttSettings(_Fields):
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
    sys_interval: float = 10.0  # seconds between $SYS/broker/... statistics (Mosquitto's); 0: none


class AclRule(_Fields):
    """One ACL rule. `who` is a tuple describing the selector:
    ("all",) | ("username", name) | ("clientid", id) | ("ipaddr", cidr)
    | ("and", [who, ...]) | ("or", [who, ...])."""

    permit: str = "allow"  # allow | deny
    who: tuple = ("all",)
    action: str = "pubsub"  # publish | subscribe | pubsub
    topics: list[str] = _New(list)  # empty: every topic


class HttpAuthRequest(_Fields):
    url: str = ""
    method: str = "post"  # get | post
    headers: dict[str, str] = _New(dict)
    params: dict[str, str] = _New(dict)


class HttpAuthSettings(_Fields):
    auth_req: HttpAuthRequest | None = None
    super_req: HttpAuthRequest | None = None
    acl_req: HttpAuthRequest | None = None
    timeout: float = 5.0
    connect_timeout: float = 5.0
    pool_size: int = 32
    cache_ttl: float = 60.0


class AuthSettings(_Fields):
    allow_anonymous: bool = True
    no_match: str = "allow"  # allow | deny
    deny_action: str = "ignore"  # ignore | disconnect
    users: dict[str, str] = _New(dict)  # username -> password (plain or hashed)
    acl: list[AclRule] = _New(list)
    http_auth: HttpAuthSettings | None = None


class LogSettings(_Fields):
    to: list[str] = _New(lambda: ["console"])  # console | file | syslog
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


class WebhookRule(_Fields):
    """`{event = "on_message_publish", topic = "nmq/#"}`; topic only for message events."""

    event: str
    topic: str | None = None


class WebhookTls(_Fields):
    cacertfile: str = ""
    certfile: str = ""
    keyfile: str = ""
    verify: bool = True


class WebhookSettings(_Fields):
    url: str
    headers: dict[str, str] = _New(dict)  # sent as written, in order
    encoding: str = "plain"  # plain | base64 | base62
    pool_size: int = 32
    cancel_timeout: float = 5.0  # seconds: connect and send timeout
    events: list[WebhookRule] = _New(list)
    tls: WebhookTls | None = None
    queue_size: int = 10000  # bounded hand-off queue
    max_retries: int = 3  # retries after the first try for 429, 5xx, connection errors
    retry_backoff: float = 0.1  # first back-off, doubled per retry
    drain_timeout: float = 5.0  # seconds spent draining the queue at stop
    per_client_order: bool = False  # one client's events one POST per round trip, in order


class HttpServerSettings(_Fields):
    """The `http_server { }` block: NanoMQ's HTTP API (v4) on its own port, basic auth."""

    host: str = "0.0.0.0"
    port: int = 8081  # 0: a free port, printed at start
    limit_conn: int = 32  # connections served at once; more wait in the listen backlog
    username: str = "admin"
    password: str = "public"
    auth_type: str = "basic"  # only basic: NanoMQ's jwt is refused by the config reader


class SqliteSettings(_Fields):
    """The `sqlite { }` block: the durable store (retained messages, sessions, spool)."""

    mounted_file_path: str = "/tmp/"  # directory of nanomq.db
    disk_cache_size: int = 102400  # most messages kept on disk (per queue for named queues)
    flush_mem_threshold: int = 100  # NanoMQ's batch size; accepted, every burst is committed at once
    resend_interval: float = 5.0  # seconds between spool/bridge cache resend attempts
    synchronous: str = "FULL"  # SQLite PRAGMA synchronous: FULL survives power loss, NORMAL kill -9 only
    webhook_spool: bool = True  # undeliverable webhook events wait in the store instead of being dropped


class Settings(_Fields):
    listeners: list[ListenerSettings] = _New(lambda: [ListenerSettings()])
    mqtt: MqttSettings = _New(MqttSettings)
    auth: AuthSettings = _New(AuthSettings)
    log: LogSettings = _New(LogSettings)
    webhook: WebhookSettings | None = None
    http_server: HttpServerSettings | None = None
    bridges: BridgesSettings | None = None
    sqlite: SqliteSettings | None = None
    daemon: bool = False
    pid_file: str = DEFAULT_PID_FILE
    source: str = "<built-in defaults>"  # file the settings came from, for messages


class BridgeRule(_Fields):
    """One `forwards` or `subscription` entry of a bridge. `local_topic` / `remote_topic` are
    filters on the side the message comes from and topics (wildcards filled) on the side it
    goes to; qos / retain None keep the message's own."""

    local_topic: str
    remote_topic: str
    qos: int | None = None
    retain: bool | None = None
    prefix: str = ""
    suffix: str = ""
    retain_as_published: bool = False  # subscription only (v5 SUBSCRIBE options)
    retain_handling: int = 0
    no_local: bool = True


class BridgeWill(_Fields):
    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    properties: dict = _New(dict)  # MQTT 5 will properties by property id


class BridgeTls(_Fields):
    cacertfile: str = ""
    certfile: str = ""
    keyfile: str = ""
    key_password: str = ""
    verify_peer: bool = True


class BridgeSettings(_Fields):
    """One `bridges.mqtt.<name> { }` block: an MQTT client connection to an upstream broker."""

    name: str
    servers: list = _New(list)  # (scheme, host, port) tried in order: server, then hybrid_servers
    proto_ver: int = 4
    clientid: str = ""
    keepalive: float = 60.0
    clean_start: bool = True
    username: str | None = None
    password: str | None = None
    will: BridgeWill | None = None
    tls: BridgeTls | None = None
    conn_properties: dict = _New(dict)  # MQTT 5 CONNECT properties by property id
    sub_properties: dict = _New(dict)  # MQTT 5 SUBSCRIBE properties by property id
    forwards: list[BridgeRule] = _New(list)
    subscription: list[BridgeRule] = _New(list)
    max_send_queue_len: int = 32  # QoS 1/2 messages in flight upstream at once
    resend_interval: float = 5.0  # seconds before an unacknowledged message is sent again (3.1.1)
    cancel_timeout: float = 8.0  # seconds to connect and get the CONNACK
    backoff_max: float = 60.0  # the longest wait between reconnect attempts
    retry_qos_0: bool = False  # QoS 0 messages are cached while the link is down, too
    transparent: bool = False  # mirror local SUBSCRIBE / UNSUBSCRIBE upstream


class BridgeCacheSettings(_Fields):
    """`bridges.mqtt.cache { }`: where and how many messages each bridge keeps while its link is
    down (without a `sqlite { }` block; with one, the sqlite block's store is used)."""

    disk_cache_size: int = 102400  # messages per bridge; the oldest are dropped beyond it
    mounted_file_path: str = "/tmp/"
    flush_mem_threshold: int = 100
    resend_interval: float = 5.0  # accepted; the cache is sent as soon as the link has room


class BridgesSettings(_Fields):
    mqtt: list[BridgeSettings] = _New(list)
    cache: BridgeCacheSettings | None = None  # the block, when given: a durable cache without sqlite { }
