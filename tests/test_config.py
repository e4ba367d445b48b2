"""nanomq.conf, the old key=value file, NANOMQ_* variables and flags -> Settings."""

from __future__ import annotations

import logging
import marshal
import re
from pathlib import Path

import pytest

from nanomq_py.config import ConfigError, load_settings
from nanomq_py.logs import TRACE, console_shows, setup_logging
from nanomq_py.settings import (
    AclRule,
    AuthSettings,
    HttpAuthRequest,
    HttpAuthSettings,
    HttpServerSettings,
    ListenerSettings,
    LogSettings,
    MqttSettings,
    Settings,
    TlsSettings,
    WebhookRule,
    WebhookSettings,
    WebhookTls,
    from_data,
    to_data,
)

REPO = Path(__file__).resolve().parent.parent

TUTORIAL_WEBHOOK = """
webhook {
  url = "http://127.0.0.1:8888"                   # Destination endpoint for webhook requests
  headers.content-type = "application/json"       # Content-Type of the request
  body.encoding = plain                           # Payload encoding: plain, base64, or base62
  pool_size = 32                                  # Number of concurrent HTTP connections

  events = [
    {
      event = "on_message_publish"
      topic = "nmq/pub"
    }
    {
      event = "on_client_connack"
    }
    {
      event = "on_client_disconnected"
    }
  ]
}
"""

# NanoMQ 0.19's shipped etc/nanomq.conf, as users copy it.
NANOMQ_DEFAULT_CONF = """
mqtt {
    property_size = 32
    max_packet_size = 256MB
    max_mqueue_len = 2048
    retry_interval = 10s
    keepalive_multiplier = 1.25
    max_inflight_window = 2048
    max_awaiting_rel = 10s
    await_rel_timeout = 10s
}
listeners.tcp {
    bind = "0.0.0.0:1883"
}
listeners.ws {
    bind = "0.0.0.0:8083/mqtt"
}
http_server {
    port = 8081
    limit_conn = 2
    username = admin
    password = public
    auth_type = basic
    jwt {
        public.keyfile = "/etc/certs/jwt/jwtRS256.key.pub"
    }
}
log {
    to = [file, console]
    level = warn
    dir = "/tmp"
    file = "nanomq.log"
    rotation {
        size = 10MB
        count = 5
    }
}
auth {
    allow_anonymous = true
    no_match = allow
    deny_action = ignore
    cache = {
        max_size = 32
        ttl = 1m
    }
}
"""


@pytest.fixture
def conf(tmp_path):
    """conf(text, name="nanomq.conf") -> path of a config file written in tmp_path."""

    def write(text, name="nanomq.conf"):
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


def load(path=None, env=None, overrides=None, old=None):
    return load_settings(path, old, env or {}, overrides)


def error_of(path=None, env=None, overrides=None, old=None):
    with pytest.raises(ConfigError) as caught:
        load(path, env, overrides, old)
    message = str(caught.value)
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- defaults and shipped files


def test_no_config_gives_the_built_in_defaults():
    settings, warnings = load()
    assert settings.listeners == [ListenerSettings(kind="tcp", host="0.0.0.0", port=1883)]
    assert settings.mqtt == MqttSettings()
    assert settings.webhook is None
    assert settings.pid_file == "/tmp/nanomq/nanomq.pid"
    assert warnings == []


def test_shipped_default_conf_is_exactly_the_built_in_defaults():
    settings, warnings = load(str(REPO / "etc" / "nanomq.conf"))
    expected = Settings()
    expected.source = settings.source
    assert settings == expected
    assert warnings == []


def test_shipped_default_conf_webhook_block_works_uncommented(conf):
    text = (REPO / "etc" / "nanomq.conf").read_text()
    start = text.index("# webhook {")
    block = [line[2:] if line.startswith("# ") else line.lstrip("#") for line in text[start:].splitlines()]
    settings, warnings = load(conf(text[:start] + "\n".join(block)))
    assert warnings == []
    assert settings.webhook == WebhookSettings(
        url="http://127.0.0.1:8888",
        headers={"content-type": "application/json"},
        events=[
            WebhookRule("on_message_publish", "nmq/pub"),
            WebhookRule("on_client_connack"),
            WebhookRule("on_client_disconnected"),
        ],
    )


def test_shipped_default_conf_http_server_block_works_uncommented(conf):
    text = (REPO / "etc" / "nanomq.conf").read_text()
    start = text.index("# http_server {")
    end = text.index("# }\n", start) + len("# }\n")
    block = [line[2:] if line.startswith("# ") else line.lstrip("#") for line in text[start:end].splitlines()]
    settings, warnings = load(conf(text[:start] + "\n".join(block) + "\n" + text[end:]))
    assert warnings == []
    assert settings.http_server == HttpServerSettings()


def test_tutorial_webhook_block(conf):
    settings, warnings = load(conf(TUTORIAL_WEBHOOK))
    assert warnings == []
    assert settings.webhook == WebhookSettings(
        url="http://127.0.0.1:8888",
        headers={"content-type": "application/json"},
        encoding="plain",
        pool_size=32,
        events=[
            WebhookRule("on_message_publish", "nmq/pub"),
            WebhookRule("on_client_connack", None),
            WebhookRule("on_client_disconnected", None),
        ],
    )


def test_nanomq_shipped_conf_loads_with_warnings_for_what_we_do_not_use(conf):
    path = conf(NANOMQ_DEFAULT_CONF)
    settings, warnings = load(path)
    assert [(lst.kind, lst.port, lst.path) for lst in settings.listeners] == [
        ("tcp", 1883, ""),
        ("ws", 8083, "/mqtt"),
    ]
    assert settings.mqtt.max_packet_size == 256 * 1024 * 1024
    assert settings.mqtt.keepalive_multiplier == 1.25
    assert settings.mqtt.await_rel_timeout == 10.0
    assert settings.mqtt.max_awaiting_rel == MqttSettings().max_awaiting_rel
    assert settings.log.to == ["file", "console"]
    assert len(warnings) == 3
    assert f"{path}: mqtt.max_awaiting_rel = 10 seconds is a message count, not a duration" in warnings[0]
    assert settings.http_server == HttpServerSettings(port=8081, limit_conn=2)
    assert any("http_server.jwt is a NanoMQ setting that nanomq_py does not use" in w for w in warnings)
    assert any("auth.cache is a NanoMQ setting" in w for w in warnings)


def test_every_mqtt_field_is_read_by_its_name(conf):
    lines = []
    expected = {}
    for name, value in vars(MqttSettings()).items():
        if isinstance(value, bool):
            lines.append(f"{name} = {str(not value).lower()}")
            expected[name] = not value
        else:
            lines.append(f"{name} = 1")
            expected[name] = 1
    settings, warnings = load(conf("mqtt {\n" + "\n".join(lines) + "\n}\n"))
    assert warnings == []
    assert vars(settings.mqtt) == expected


# --------------------------------------------------------------------------- value forms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max_packet_size = 1024", 1024),
        ("max_packet_size = 10KB", 10 * 1024),
        ("max_packet_size = 10MB", 10 * 1024 * 1024),
        ("max_packet_size = 256MB", 256 * 1024 * 1024),
        ('max_packet_size = "10mb"', 10 * 1024 * 1024),
        ("max_packet_size = 2kb", 2048),
        ("max_packet_size = 10M", 10 * 1024 * 1024),
        ("max_packet_size = 10m", 10 * 1024 * 1024),  # pyhocon reads minutes; NanoMQ means MB
        ("max_packet_size = 1B", 1),
    ],
)
def test_sizes(conf, text, expected):
    settings, _ = load(conf(f"mqtt {{ {text} }}"))
    assert settings.mqtt.max_packet_size == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("retry_interval = 10s", 10.0),
        ('retry_interval = "10s"', 10.0),
        ("retry_interval = 5m", 300.0),
        ("retry_interval = 1h", 3600.0),
        ("retry_interval = 1d", 86400.0),
        ("retry_interval = 500ms", 0.5),
        ("retry_interval = 20", 20.0),
        ("retry_interval = 2.5", 2.5),
        ('retry_interval = "1.5s"', 1.5),
        ("retry_interval = 10 s", 10.0),
    ],
)
def test_durations(conf, text, expected):
    settings, _ = load(conf(f"mqtt {{ {text} }}"))
    assert settings.mqtt.retry_interval == pytest.approx(expected)


def test_webhook_cancel_timeout_plain_number_is_milliseconds(conf):
    settings, _ = load(conf('webhook { url = "http://h", cancel_timeout = 2500 }'))
    assert settings.webhook.cancel_timeout == 2.5
    settings, _ = load(conf('webhook { url = "http://h", cancel_timeout = 3s }'))
    assert settings.webhook.cancel_timeout == 3.0


@pytest.mark.parametrize(
    ("text", "expected"), [("true", True), ("false", False), ('"yes"', True), ('"off"', False)]
)
def test_booleans(conf, text, expected):
    settings, _ = load(conf(f"system.daemon = {text}"))
    assert settings.daemon is expected


def test_include_is_resolved_relative_to_the_file(tmp_path, conf):
    (tmp_path / "sub").mkdir()
    conf("mqtt { max_mqueue_len = 77 }", name="sub/mqtt.conf")
    settings, _ = load(conf('include "sub/mqtt.conf"\nlog.level = info\n'))
    assert settings.mqtt.max_mqueue_len == 77
    assert settings.log.level == "info"


# --------------------------------------------------------------------------- listeners


def test_several_named_tcp_listeners(conf):
    text = """
    listeners.tcp { bind = "127.0.0.1:1883" }
    listeners.tcp.second { bind = "[::1]:1884" }
    listeners.tcp.third { bind = "localhost:0" }
    listeners.tcp.off { bind = "0.0.0.0:1885", enable = false }
    """
    settings, _ = load(conf(text))
    assert [(lst.name, lst.host, lst.port) for lst in settings.listeners] == [
        ("default", "127.0.0.1", 1883),
        ("second", "::1", 1884),
        ("third", "localhost", 0),
    ]


def test_ssl_ws_and_wss_listeners(tmp_path, conf):
    for name in ("key.pem", "cert.pem", "ca.pem", "wkey.pem"):
        (tmp_path / name).write_text("x")
    text = f"""
    listeners.ssl {{
        bind = "0.0.0.0:8883"
        keyfile = "{tmp_path}/key.pem"
        certfile = "{tmp_path}/cert.pem"
        cacertfile = "{tmp_path}/ca.pem"
        key_password = "secret"
        verify_peer = true
        fail_if_no_peer_cert = true
    }}
    listeners.ws {{ bind = "0.0.0.0:8083/mqtt" }}
    listeners.wss {{ bind = "0.0.0.0:8086/mqtt", keyfile = "{tmp_path}/wkey.pem" }}
    """
    settings, _ = load(conf(text))
    tcp, ssl, ws, wss = settings.listeners
    assert tcp == ListenerSettings()
    assert ssl.tls == TlsSettings(
        f"{tmp_path}/key.pem", f"{tmp_path}/cert.pem", f"{tmp_path}/ca.pem", "secret", True, True
    )
    assert (ws.kind, ws.port, ws.path, ws.tls) == ("ws", 8083, "/mqtt", None)
    assert (wss.kind, wss.port, wss.path) == ("wss", 8086, "/mqtt")
    assert wss.tls.keyfile == f"{tmp_path}/wkey.pem"  # its own
    assert wss.tls.certfile == f"{tmp_path}/cert.pem"  # taken from listeners.ssl, as NanoMQ does


def test_listener_blocks_without_bind_use_nanomq_ports(conf):
    settings, _ = load(conf("listeners.ws {}\nlisteners.tcp.enable = false"))
    assert [(lst.kind, lst.port, lst.path) for lst in settings.listeners] == [("ws", 8083, "/mqtt")]


# --------------------------------------------------------------------------- auth


def test_password_and_acl_includes_in_nanomq_formats(tmp_path, conf):
    conf('# # Write "username":"password" in this way.\n"admin": "public"\nclient: 123456\n', name="pwd.conf")
    conf(
        """
        rules = [
            {"permit": "allow", "username": "dashboard", "action": "subscribe", "topics": ["$SYS/#"]}
            {"permit": "deny", "username": "#", "action": "subscribe", "topics": ["$SYS/#", "@#"]}
            {"permit": "allow", "ipaddr": "127.0.0.1", "action": "pubsub", "topics": ["t/${clientid}"]}
            {"permit": "allow"}
        ]
        """,
        name="acl.conf",
    )
    text = 'auth { allow_anonymous = false, password = {include "pwd.conf"}, acl = {include "acl.conf"} }'
    settings, warnings = load(conf(text))
    assert warnings == []
    assert settings.auth.allow_anonymous is False
    assert settings.auth.users == {"admin": "public", "client": "123456"}
    assert settings.auth.acl == [
        AclRule("allow", ("username", "dashboard"), "subscribe", ["$SYS/#"]),
        AclRule("deny", ("all",), "subscribe", ["$SYS/#", "@#"]),
        AclRule("allow", ("ipaddr", "127.0.0.1"), "pubsub", ["t/${clientid}"]),
        AclRule("allow", ("all",), "pubsub", []),
    ]


def test_inline_password_acl_selectors_and_http_auth(conf):
    text = """
    auth {
        no_match = deny
        deny_action = disconnect
        password { "user" = "pass" }
        acl {
            rules = [
                {permit = allow, clientid = "c1", action = publish, topics = ["a/#"]}
                {permit = allow, and = [{username = "u"}, {ipaddr = "10.0.0.0/8"}]}
                {permit = deny, or = [{clientid = "x"}, {username = "#"}]}
                {permit = allow, ipaddrs = ["10.0.0.1", "10.0.0.2"]}
            ]
        }
        http_auth {
            auth_req {
                url = "http://127.0.0.1:80/mqtt/auth"
                method = GET
                headers.content-type = "application/x-www-form-urlencoded"
                params = {clientid = "%c", username = "%u", password = "%P"}
            }
            timeout = 3s
            pool_size = 4
        }
    }
    """
    settings, warnings = load(conf(text))
    assert warnings == []
    auth = settings.auth
    assert (auth.no_match, auth.deny_action, auth.users) == ("deny", "disconnect", {"user": "pass"})
    assert [rule.who for rule in auth.acl] == [
        ("clientid", "c1"),
        ("and", [("username", "u"), ("ipaddr", "10.0.0.0/8")]),
        ("or", [("clientid", "x"), ("all",)]),
        ("or", [("ipaddr", "10.0.0.1"), ("ipaddr", "10.0.0.2")]),
    ]
    assert auth.http_auth.auth_req == HttpAuthRequest(
        url="http://127.0.0.1:80/mqtt/auth",
        method="get",
        headers={"content-type": "application/x-www-form-urlencoded"},
        params={"clientid": "%c", "username": "%u", "password": "%P"},
    )
    assert (auth.http_auth.timeout, auth.http_auth.pool_size, auth.http_auth.super_req) == (3.0, 4, None)


# --------------------------------------------------------------------------- log, webhook extras


def test_log_block(conf):
    text = 'log { to = [file, syslog], level = DEBUG, dir = "/var/log", file = "m.log", rotation.size = 1MB }'
    settings, _ = load(conf(text))
    assert settings.log == LogSettings(["file", "syslog"], "debug", "/var/log", "m.log", 1024 * 1024, 5)


def test_webhook_everything(tmp_path, conf):
    (tmp_path / "ca.pem").write_text("x")
    text = f"""
    webhook {{
        url = "https://hooks.example.com:8443/path?x=1"
        headers.authorization = "Bearer t"
        headers.x-count = 5
        body.encoding = BASE62
        pool_size = 4
        cancel_timeout = 1s
        queue_size = 100
        max_retries = 0
        retry_backoff = 250ms
        drain_timeout = 2s
        ssl {{ cacertfile = "{tmp_path}/ca.pem", verify = false }}
        events = [
            {{event = on_message_publish, topic = "nmq/#"}}
            {{event = on_message_dropped}}
            {{event = on_session_terminated}}
        ]
    }}
    """
    settings, warnings = load(conf(text))
    assert warnings == []
    hook = settings.webhook
    assert hook.headers == {"authorization": "Bearer t", "x-count": "5"}
    assert (hook.encoding, hook.pool_size, hook.cancel_timeout) == ("base62", 4, 1.0)
    assert (hook.queue_size, hook.max_retries, hook.retry_backoff, hook.drain_timeout) == (100, 0, 0.25, 2.0)
    assert (hook.tls.cacertfile, hook.tls.verify) == (f"{tmp_path}/ca.pem", False)
    assert [(r.event, r.topic) for r in hook.events] == [
        ("on_message_publish", "nmq/#"),
        ("on_message_dropped", None),
        ("on_session_terminated", None),
    ]


def test_webhook_enable_false_disables_it_and_no_block_means_off(conf):
    assert load(conf('webhook { enable = false, url = "http://h" }'))[0].webhook is None
    assert load(conf("mqtt {}"))[0].webhook is None


def test_http_server_block(conf):
    settings, warnings = load(
        conf(
            'http_server { bind = "127.0.0.1", port = 0, limit_conn = 4, username = u, password = p, '
            "auth_type = Basic }"
        )
    )
    assert warnings == []
    assert settings.http_server == HttpServerSettings("127.0.0.1", 0, 4, "u", "p", "basic")
    assert load(conf("http_server {}"))[0].http_server == HttpServerSettings()
    assert load(conf('http_server { bind = "[::1]" }'))[0].http_server.host == "::1"
    assert load(conf("http_server { enable = false, port = -1 }"))[0].http_server is None
    assert load(conf("mqtt {}"))[0].http_server is None


def test_topic_on_a_non_message_event_is_ignored_with_a_warning(conf):
    settings, warnings = load(
        conf('webhook { url = "http://h", events = [{event = on_client_connack, topic = "a"}] }')
    )
    assert settings.webhook.events == [WebhookRule("on_client_connack", None)]
    assert len(warnings) == 1 and "webhook.events[0].topic is ignored" in warnings[0]


# --------------------------------------------------------------------------- bad configurations


@pytest.mark.parametrize(
    ("text", "key", "value", "allowed"),
    [
        ('webhook { url = "http://h", pool_size = 0 }', "webhook.pool_size", "0", "expected an integer >= 1"),
        ("log.level = loud", "log.level", '"loud"', "trace, debug, info, warn, error, fatal"),
        ("log.to = [console, printer]", "log.to", '["console", "printer"]', "console, file, syslog"),
        (
            'webhook { url = "http://h", body.encoding = hex }',
            "webhook.body.encoding",
            '"hex"',
            "plain, base64, base62",
        ),
        ("mqtt.keepalive_multiplier = 0", "mqtt.keepalive_multiplier", "0", "a number > 0"),
        ("mqtt.keepalive_multiplier = -1.5", "mqtt.keepalive_multiplier", "-1.5", "a number > 0"),
        ("mqtt.max_mqueue_len = 0", "mqtt.max_mqueue_len", "0", "an integer >= 1"),
        ("mqtt.max_mqueue_len = abc", "mqtt.max_mqueue_len", '"abc"', "an integer >= 1"),
        ("mqtt.max_mqueue_len = true", "mqtt.max_mqueue_len", "true", "an integer >= 1"),
        ("mqtt.max_inflight_window = 70000", "mqtt.max_inflight_window", "70000", "from 1 to 65535"),
        ("mqtt.max_qos = 3", "mqtt.max_qos", "3", "from 0 to 2"),
        ("mqtt.max_packet_size = 1TB", "mqtt.max_packet_size", '"1TB"', "KB, MB, GB"),
        ("mqtt.max_packet_size = 300MB", "mqtt.max_packet_size", '"300MB"', "from 1 to 260MB"),
        ("mqtt.max_packet_size = [1]", "mqtt.max_packet_size", "[1]", "a size in bytes"),
        ("mqtt.retry_interval = soon", "mqtt.retry_interval", '"soon"', "500ms, 10s, 5m, 1h, 1d"),
        ("mqtt.retry_interval = 1mo", "mqtt.retry_interval", "1 months", "500ms, 10s, 5m, 1h, 1d"),
        ("mqtt.retry_interval = 0", "mqtt.retry_interval", "0", "> 0s"),
        ("system.daemon = maybe", "system.daemon", '"maybe"', "true or false"),
        ("mqtt = 5", "mqtt", "5", "an object"),
        (
            'listeners.tcp.bind = "0.0.0.0"',
            "listeners.tcp.bind",
            '"0.0.0.0"',
            "host:port with a port from 0 to 65535",
        ),
        (
            'listeners.tcp.bind = "0.0.0.0:70000"',
            "listeners.tcp.bind",
            '"0.0.0.0:70000"',
            "port from 0 to 65535",
        ),
        ('listeners.tcp.bind = "bad host:1883"', "listeners.tcp.bind", '"bad host:1883"', "host:port"),
        (
            'listeners.tcp.bind = "0.0.0.0:1883/mqtt"',
            "listeners.tcp.bind",
            '"0.0.0.0:1883/mqtt"',
            "host:port",
        ),
        ('listeners.tcp.bind = "nmq-ws://0.0.0.0:8083/mqtt"', "listeners.tcp.bind", "nmq-ws", "not ws"),
        ('webhook { url = "ftp://h" }', "webhook.url", '"ftp://h"', "http://host[:port][/path]"),
        (
            'webhook { url = "http://h:99999" }',
            "webhook.url",
            '"http://h:99999"',
            "http://host[:port][/path]",
        ),
        ('webhook { url = "not a url" }', "webhook.url", '"not a url"', "http://host[:port][/path]"),
        (
            'webhook { url = "http://h", events = [{event = on_message_publishh}] }',
            "webhook.events[0].event",
            '"on_message_publishh"',
            "on_client_connect, on_client_connack",
        ),
        (
            'webhook { url = "http://h", events = [{event = on_message_publish, topic = "a/#/b"}] }',
            "webhook.events[0].topic",
            '"a/#/b"',
            "an MQTT topic filter",
        ),
        (
            'webhook { url = "http://h", events = [{event = on_message_publish, topic = "a+"}] }',
            "webhook.events[0].topic",
            '"a+"',
            "an MQTT topic filter",
        ),
        ("auth.acl.rules = [{permit = maybe}]", "auth.acl.rules[0].permit", '"maybe"', "allow, deny"),
        (
            'auth.acl.rules = [{permit = allow, topics = ["a/#/b"]}]',
            "auth.acl.rules[0].topics[0]",
            '"a/#/b"',
            "filter",
        ),
        (
            'auth.acl.rules = [{permit = allow, ipaddr = "10.0.0.300"}]',
            "auth.acl.rules[0].ipaddr",
            "10.0.0.300",
            "IP",
        ),
        ('auth.http_auth.auth_req.url = "mqtt://x"', "auth.http_auth.auth_req.url", '"mqtt://x"', "http://"),
        ("log.rotation.count = 0", "log.rotation.count", "0", "an integer >= 1"),
        (
            "http_server { auth_type = jwt }",
            "http_server.auth_type",
            '"jwt"',
            "expected basic (nanomq_py does not support JWT authentication)",
        ),
        ("http_server { auth_type = digest }", "http_server.auth_type", '"digest"', "expected basic"),
        ("http_server { port = 65536 }", "http_server.port", "65536", "an integer from 0 to 65535"),
        ("http_server { port = http }", "http_server.port", '"http"', "an integer from 0 to 65535"),
        ("http_server { limit_conn = 0 }", "http_server.limit_conn", "0", "an integer >= 1"),
        ('http_server { username = "" }', "http_server.username", '""', "a non-empty string"),
        ('http_server { password = "" }', "http_server.password", '""', "a non-empty string"),
        (
            'http_server { bind = "0.0.0.0:8081" }',
            "http_server.bind",
            '"0.0.0.0:8081"',
            "an IP address or a host name, without a port",
        ),
        ("http_server = 8081", "http_server", "8081", "an object"),
    ],
)
def test_bad_value_gives_one_line_naming_file_key_value_and_allowed(conf, text, key, value, allowed):
    path = conf(text)
    message = error_of(path)
    assert message.startswith(f"{path}: {key} = ")
    assert value in message
    assert "is invalid: " in message and allowed in message


@pytest.mark.parametrize(
    ("text", "key", "needed"),
    [
        ("webhook { pool_size = 4 }", "webhook.url", "http://host"),
        ('listeners.ssl { bind = "0.0.0.0:8883" }', "listeners.ssl.keyfile", "keyfile and certfile"),
        ("listeners.wss {}", "listeners.wss.keyfile", "keyfile and certfile"),
        ("auth.acl.rules = [{action = publish}]", "auth.acl.rules[0].permit", "permit = allow or deny"),
        (
            'webhook { url = "http://h", events = [{topic = "a"}] }',
            "webhook.events[0].event",
            "on_message_publish",
        ),
    ],
)
def test_missing_required_key(conf, text, key, needed):
    path = conf(text)
    message = error_of(path)
    assert message.startswith(f"{path}: {key} is missing: ")
    assert needed in message


def test_ssl_listener_files_must_exist(conf):
    path = conf('listeners.ssl { keyfile = "/nonexistent/key.pem", certfile = "/nonexistent/cert.pem" }')
    assert error_of(path) == (
        f'{path}: listeners.ssl.keyfile = "/nonexistent/key.pem" is invalid: expected the path of an existing file'
    )


def test_missing_password_or_acl_include(conf):
    path = conf('auth { password = {include "nope_pwd.conf"} }')
    message = error_of(path)
    assert message.startswith(f'{path}: auth.password = {{include "nope_pwd.conf"}} is invalid: ')
    assert "nope_pwd.conf does not exist or cannot be read" in message
    path = conf('auth { acl = {include "nope_acl.conf"} }')
    assert error_of(path).startswith(f'{path}: auth.acl = {{include "nope_acl.conf"}} is invalid: ')


def test_hocon_syntax_error_names_line_and_column(conf):
    path = conf("mqtt {\n  max_packet_size = 10MB\n")
    message = error_of(path)
    assert message.startswith(f"{path}: HOCON syntax error at line ")
    assert re.search(r"line \d+, column \d+", message)


def test_unreadable_file_and_both_files():
    assert error_of("/nonexistent/nanomq.conf").startswith("/nonexistent/nanomq.conf: cannot read the file")
    assert "either --conf or --old_conf" in error_of("a.conf", old="b.conf")


def test_unknown_keys_are_warnings_naming_them(conf):
    path = conf('mqtt { max_pakcet_size = 5 }\nlogg.level = info\nweb.hook.url = "http://h"\nmqtt.session {}')
    settings, warnings = load(path)
    assert settings.mqtt == MqttSettings()
    assert f"{path}: unknown key mqtt.max_pakcet_size (ignored)" in warnings
    assert f"{path}: unknown key logg (ignored)" in warnings
    assert f"{path}: unknown key mqtt.session (ignored)" in warnings
    assert any(w.startswith(f"{path}: web is NanoMQ's old format") for w in warnings)


# --------------------------------------------------------------------------- precedence


def test_environment_overrides_the_file(conf):
    path = conf('log.level = error\nmqtt.max_mqueue_len = 10\nlisteners.tcp.bind = "0.0.0.0:1883"')
    env = {
        "NANOMQ_LOG_LEVEL": "info",
        "NANOMQ_MSQ_LEN": "20",
        "NANOMQ_BROKER_URL": "nmq-tcp://127.0.0.1:1999",
        "NANOMQ_MAX_PACKET_SIZE": "1MB",
        "NANOMQ_QOS_DURATION": "30",
        "NANOMQ_ALLOW_ANONYMOUS": "false",
        "NANOMQ_DAEMON": "true",
        "NANOMQ_PROPERTY_SIZE": "64",
        "NANOMQ_LOG_TO": "file|console",
        "NANOMQ_LOG_DIR": "/var/tmp",
        "NANOMQ_LOG_FILE": "x.log",
        "NANOMQ_LOG_ROTATION_SIZE": "2MB",
        "NANOMQ_LOG_ROTATION_COUNT": "3",
        "NANOMQ_WEBSOCKET_ENABLE": "true",
        "NANOMQ_WEBSOCKET_URL": "nmq-ws://127.0.0.1:8888/ws",
        "NANOMQ_PID_FILE": "/run/x.pid",
    }
    settings, warnings = load(path, env=env)
    assert warnings == []
    assert settings.log == LogSettings(["file", "console"], "info", "/var/tmp", "x.log", 2 * 1024 * 1024, 3)
    assert (settings.mqtt.max_mqueue_len, settings.mqtt.max_packet_size) == (20, 1024 * 1024)
    assert (settings.mqtt.retry_interval, settings.mqtt.property_size) == (30.0, 64)
    assert (settings.auth.allow_anonymous, settings.daemon, settings.pid_file) == (False, True, "/run/x.pid")
    assert [(lst.kind, lst.host, lst.port, lst.path) for lst in settings.listeners] == [
        ("tcp", "127.0.0.1", 1999, ""),
        ("ws", "127.0.0.1", 8888, "/ws"),
    ]


def test_http_server_environment(conf):
    env = {"NANOMQ_HTTP_SERVER_PORT": "8090", "NANOMQ_HTTP_SERVER_USERNAME": "root"}
    settings, warnings = load(env=env)
    assert (settings.http_server, warnings) == (None, [])  # no block and no ENABLE: off, as in NanoMQ
    settings, _ = load(env={**env, "NANOMQ_HTTP_SERVER_ENABLE": "true", "NANOMQ_HTTP_SERVER_PASSWORD": "pw"})
    assert settings.http_server == HttpServerSettings(port=8090, username="root", password="pw")
    settings, _ = load(conf("http_server { port = 8081 }"), env=env)
    assert (settings.http_server.port, settings.http_server.username) == (8090, "root")
    message = error_of(env={"NANOMQ_HTTP_SERVER_ENABLE": "yes", "NANOMQ_HTTP_SERVER_AUTH_TYPE": "jwt"})
    assert message == (
        'environment: NANOMQ_HTTP_SERVER_AUTH_TYPE = "jwt" is invalid: '
        "expected basic (nanomq_py does not support JWT authentication)"
    )


def test_tls_environment_creates_the_ssl_listener(tmp_path):
    for name in ("k.pem", "c.pem"):
        (tmp_path / name).write_text("x")
    env = {
        "NANOMQ_TLS_ENABLE": "true",
        "NANOMQ_TLS_URL": "tls+nmq-tcp://0.0.0.0:8884",
        "NANOMQ_TLS_KEY_PATH": str(tmp_path / "k.pem"),
        "NANOMQ_TLS_CERT_PATH": str(tmp_path / "c.pem"),
        "NANOMQ_TLS_VERIFY_PEER": "true",
    }
    settings, _ = load(env=env)
    ssl = settings.listeners[1]
    assert (ssl.kind, ssl.port, ssl.tls.keyfile, ssl.tls.verify_peer) == (
        "ssl",
        8884,
        str(tmp_path / "k.pem"),
        True,
    )


def test_conf_path_from_environment(conf):
    path = conf("mqtt.max_mqueue_len = 5")
    settings, _ = load(env={"NANOMQ_CONF_PATH": path})
    assert (settings.mqtt.max_mqueue_len, settings.source) == (5, path)


def test_flags_override_environment_and_file(conf):
    path = conf("log.level = error\nmqtt.max_mqueue_len = 10\nlog.to = [console]")
    env = {
        "NANOMQ_LOG_LEVEL": "info",
        "NANOMQ_MSQ_LEN": "20",
        "NANOMQ_BROKER_URL": "nmq-tcp://127.0.0.1:1999",
    }
    overrides = [
        ("--url", "url", ["nmq-tcp://127.0.0.1:0", "nmq-tcp://127.0.0.1:5000", "nmq-ws://127.0.0.1:0/mqtt"]),
        ("--log_level", "log.level", "debug"),
        ("--msq_len", "mqtt.max_mqueue_len", "30"),
        ("--log_syslog", "log.to+", "syslog"),
        ("--log_stdout", "log.to-", "console"),
    ]
    settings, _ = load(path, env=env, overrides=overrides)
    assert (settings.log.level, settings.mqtt.max_mqueue_len, settings.log.to) == ("debug", 30, ["syslog"])
    assert [(lst.kind, lst.name, lst.port) for lst in settings.listeners] == [
        ("tcp", "default", 0),
        ("tcp", "url_2", 5000),
        ("ws", "default", 0),
    ]


def test_bad_environment_and_flag_values_name_the_variable_or_flag():
    assert error_of(env={"NANOMQ_LOG_LEVEL": "loud"}) == (
        'environment: NANOMQ_LOG_LEVEL = "loud" is invalid: expected one of trace, debug, info, warn, error, fatal'
    )
    assert error_of(env={"NANOMQ_DAEMON": "perhaps"}) == (
        'environment: NANOMQ_DAEMON = "perhaps" is invalid: expected true or false'
    )
    assert error_of(env={"NANOMQ_BROKER_URL": "nmq-tcp://0.0.0.0"}).startswith(
        'environment: NANOMQ_BROKER_URL = "nmq-tcp://0.0.0.0" is invalid: expected host:port'
    )
    assert error_of(overrides=[("--url", "url", ["http://x"])]).startswith(
        'command line: --url = "http://x" is invalid: expected nmq-tcp://host:port'
    )
    assert error_of(overrides=[("--qos_duration", "mqtt.retry_interval", "-1")]).startswith(
        'command line: --qos_duration = "-1" is invalid: expected a duration'
    )


def test_nanomq_environment_we_do_not_use_warns():
    _, warnings = load(env={"NANOMQ_NUM_TASKQ_THREAD": "4"})
    assert warnings == [
        "environment: NANOMQ_NUM_TASKQ_THREAD is a NanoMQ setting that nanomq_py does not use (ignored)"
    ]


# --------------------------------------------------------------------------- the old key=value file (--old_conf)

OLD_CONF = """\
## NanoMQ Configuration 0.18.0
url=nmq-tcp://127.0.0.1:1884
daemon=false
num_taskq_thread=0
property_size=16
max_packet_size=10240
msq_len=2048
qos_duration=10
keepalive_backoff=1250
allow_anonymous=false
acl_nomatch=deny
acl_deny_action=disconnect
acl.rule.2={"permit": "deny", "username": "#", "action": "subscribe", "topics": ["$SYS/#", "#"]}
acl.rule.1={"permit": "allow", "username": "dashboard", "action": "subscribe", "topics": ["$SYS/#"]}
websocket.enable=true
websocket.url=nmq-ws://0.0.0.0:8085/mqtt
websocket.tls_url=nmq-wss://0.0.0.0:8084/mqtt
log.to=file,console
log.level=info
log.rotation.size=10MB
auth.1.login = admin
auth.1.password = public
http_server.enable=false
web.hook.enable=true
web.hook.url=http://127.0.0.1:8888/hook
web.hook.headers.content-type=application/json
web.hook.headers.accept=*
web.hook.body.encoding_of_payload_field=base64
web.hook.pool_size=8
web.hook.rule.message.publish.2={"action": "on_message_publish", "topic": "b/+"}
web.hook.rule.client.connack.1={"action": "on_client_connack"}
web.hook.rule.message.publish.1={"action": "on_message_publish", "topic": "a/#"}
"""


def test_old_conf_maps_to_the_same_settings(conf):
    path = conf(OLD_CONF, name="nanomq_old.conf")
    settings, warnings = load(old=path)
    assert settings.webhook == WebhookSettings(
        url="http://127.0.0.1:8888/hook",
        headers={"content-type": "application/json", "accept": "*"},
        encoding="base64",
        pool_size=8,
        events=[
            WebhookRule("on_client_connack", None),
            WebhookRule("on_message_publish", "a/#"),
            WebhookRule("on_message_publish", "b/+"),
        ],
    )
    assert [(lst.kind, lst.host, lst.port, lst.path) for lst in settings.listeners] == [
        ("tcp", "127.0.0.1", 1884, ""),
        ("ws", "0.0.0.0", 8085, "/mqtt"),  # no wss: tls.enable is not set
    ]
    mqtt = settings.mqtt
    assert (mqtt.property_size, mqtt.max_packet_size, mqtt.max_mqueue_len) == (16, 10 * 1024 * 1024, 2048)
    assert (mqtt.retry_interval, mqtt.keepalive_multiplier) == (10.0, 1.25)
    assert (settings.auth.allow_anonymous, settings.auth.no_match, settings.auth.deny_action) == (
        False,
        "deny",
        "disconnect",
    )
    assert settings.auth.users == {"admin": "public"}
    assert [rule.who for rule in settings.auth.acl] == [("username", "dashboard"), ("all",)]
    assert (settings.log.to, settings.log.level) == (["file", "console"], "info")
    assert settings.http_server is None  # http_server.enable=false
    assert warnings == [f"{path}: NanoMQ settings that nanomq_py does not use are ignored: num_taskq_thread"]


def test_old_conf_webhook_is_off_unless_enabled(conf):
    path = conf("web.hook.url=http://127.0.0.1:80\nweb.hook.enable=false\n", name="old.conf")
    assert load(old=path)[0].webhook is None
    path = conf("web.hook.url=http://127.0.0.1:80\n", name="old2.conf")
    assert load(old=path)[0].webhook is None


def test_old_conf_http_server_keys(conf):
    text = (
        "http_server.enable=true\nhttp_server.port=8082\nhttp_server.parallel=32\n"
        "http_server.username=root\nhttp_server.password=secret\nhttp_server.auth_type=basic\n"
        "http_server.jwt.public.keyfile=/etc/certs/jwt/jwtRS256.key.pub\n"
    )
    path = conf(text, name="old.conf")
    settings, warnings = load(old=path)
    assert settings.http_server == HttpServerSettings(port=8082, username="root", password="secret")
    assert warnings == [
        f"{path}: NanoMQ settings that nanomq_py does not use are ignored: "
        "http_server.parallel, http_server.jwt.*"
    ]
    path = conf("http_server.port=8082\n", name="old2.conf")
    assert load(old=path)[0].http_server is None  # off unless http_server.enable=true
    path = conf("http_server.enable=true\nhttp_server.auth_type=jwt\n", name="old3.conf")
    assert error_of(old=path) == (
        f"{path}: http_server.auth_type = jwt is invalid: "
        "expected basic (nanomq_py does not support JWT authentication)"
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            'web.hook.rule.message.publish.1={"action": "on_message_publish", "topic": "a/#/b"}',
            "web.hook.rule.message.publish.1 = a/#/b is invalid: expected an MQTT topic filter",
        ),
        (
            'web.hook.rule.client.foo.1={"action": "on_client_foo"}',
            "web.hook.rule.client.foo.1 = on_client_foo is invalid: expected one of on_client_connect",
        ),
        (
            "web.hook.rule.client.connack.1={action: on_client_connack",
            "web.hook.rule.client.connack.1 = {action: on_client_connack is invalid: expected a JSON object",
        ),
        ("web.hook.pool_size=0", "web.hook.pool_size = 0 is invalid: expected an integer >= 1"),
        (
            "web.hook.body.encoding_of_payload_field=hex",
            "web.hook.body.encoding_of_payload_field = hex is invalid",
        ),
        ("max_packet_size=lots", "max_packet_size = lots is invalid"),
        ("url=nmq-tcp://0.0.0.0", "url = nmq-tcp://0.0.0.0 is invalid: expected host:port"),
        ("this line has no equals sign", "line 2 is invalid: expected key=value"),
    ],
)
def test_old_conf_errors_name_the_old_key(conf, line, expected):
    path = conf(f"web.hook.enable=true\n{line}\nweb.hook.url=http://127.0.0.1:80\n", name="old.conf")
    message = error_of(old=path)
    assert message.startswith(f"{path}: {expected}")


# --------------------------------------------------------------------------- logging set up from LogSettings


@pytest.fixture
def nanomq_logger():
    """Gives back the "nanomq" logger as it was: other tests capture its records through the root logger."""
    logger = logging.getLogger("nanomq")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield logger
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    handlers, logger.level, logger.propagate = saved
    for handler in handlers:
        logger.addHandler(handler)


def test_setup_logging_writes_one_line_records_to_a_rotating_file(tmp_path, nanomq_logger):
    settings = LogSettings(
        to=["file"], level="trace", dir=str(tmp_path / "logs"), file="n.log", rotation_size=300
    )
    logger = setup_logging(settings)
    child = logging.getLogger("nanomq.test")
    child.log(TRACE, "a trace line")
    child.warning("a warn line")
    child.critical("x" * 200)
    child.critical("y" * 200)
    for handler in logger.handlers:
        handler.flush()
    files = sorted((tmp_path / "logs").iterdir(), key=lambda f: f.name, reverse=True)  # oldest first
    assert [f.name for f in files] == ["n.log.2", "n.log.1", "n.log"]
    lines = [line for f in files for line in f.read_text().splitlines()]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} TRACE nanomq\.test: a trace line", lines[0])
    assert " WARN  nanomq.test: a warn line" in lines[1]
    assert " FATAL nanomq.test: " in lines[-1]


def test_log_level_filters_and_console_shows(nanomq_logger):
    settings = LogSettings(to=["console"], level="error")
    logger = setup_logging(settings)
    assert logger.getEffectiveLevel() == logging.ERROR
    assert console_shows(settings, logging.ERROR) and not console_shows(settings, logging.WARNING)
    assert not console_shows(LogSettings(to=["file"], level="trace"), logging.ERROR)


# --------------------------------------------------------------------------- settings objects


def test_settings_cross_from_the_config_child_as_marshal_data():
    """The CLI's configuration child sends `to_data(settings)` through marshal: every
    settings class, tuple, list and dict comes back equal and of the same type."""
    settings = Settings(
        listeners=[
            ListenerSettings(),
            ListenerSettings("ssl", "tls", "::1", 8883, tls=TlsSettings("k.pem", "c.pem", verify_peer=True)),
        ],
        mqtt=MqttSettings(max_qos=1, retry_interval=2.5),
        auth=AuthSettings(
            users={"": "empty name", "u": "pw"},
            acl=[AclRule("deny", ("and", [("ipaddr", "10.0.0.0/8"), ("username", "u")]), "publish", ["a/#"])],
            http_auth=HttpAuthSettings(auth_req=HttpAuthRequest("http://a", headers={"x": "y"})),
        ),
        log=LogSettings(["file"], "debug"),
        webhook=WebhookSettings(
            "http://h",
            events=[WebhookRule("on_message_publish", "t/#"), WebhookRule("on_client_connack")],
            tls=WebhookTls(verify=False),
        ),
        http_server=HttpServerSettings("::1", 0, 3, "a", "b"),
        daemon=True,
    )
    back = from_data(marshal.loads(marshal.dumps(to_data(settings))))
    assert back == settings
    assert back != Settings()
    who = back.auth.acl[0].who
    assert type(who) is tuple and type(who[1]) is list and type(who[1][0]) is tuple


def test_settings_classes_construct_compare_and_list_fields_like_dataclasses():
    assert WebhookRule("e") == WebhookRule(event="e", topic=None) != WebhookRule("e", "t")
    assert MqttSettings.FIELDS[:2] == ("max_packet_size", "max_mqueue_len")
    assert list(vars(MqttSettings())) == list(MqttSettings.FIELDS)
    first, second = Settings(), Settings()
    assert first.listeners == second.listeners and first.listeners is not second.listeners
    assert first.log.to is not second.log.to
    assert repr(WebhookRule("e")) == "WebhookRule(event='e', topic=None)"
    for make in (WebhookRule, lambda: WebhookRule("e", "t", "x"), lambda: LogSettings(colour=1)):
        with pytest.raises(TypeError):
            make()
    with pytest.raises(TypeError):
        hash(first)
