"""The `http_server { }` section -> `HttpServerSettings`, or None when disabled.

NanoMQ's keys: port, limit_conn, username, password, auth_type. `bind` (the host
to listen on, default every IPv4 address as NanoMQ does) is ours. JWT is not
supported: `auth_type = jwt` stops the start rather than serving the API
without the authentication the file asks for.
"""

from __future__ import annotations

from nanomq_py.settings import HttpServerSettings

from .values import boolean, host, integer, nonempty_string


def read_http_server(section):
    if not section.take("enable", boolean, True):
        section.seen.update(section.data)  # a disabled block is not checked further
        return None
    defaults = HttpServerSettings()
    settings = HttpServerSettings(
        host=section.take("bind", host, defaults.host),
        port=section.take("port", integer(0, 65535), defaults.port),
        limit_conn=section.take("limit_conn", integer(1), defaults.limit_conn),
        username=section.take("username", nonempty_string, defaults.username),
        password=section.take("password", nonempty_string, defaults.password),
        auth_type=section.take("auth_type", _auth_type, defaults.auth_type),
    )
    section.finish()
    return settings


def _auth_type(ctx, path, value):
    if isinstance(value, str) and value.strip().lower() == "basic":
        return "basic"
    if isinstance(value, str) and value.strip().lower() == "jwt":
        ctx.fail(path, value, "expected basic (nanomq_py does not support JWT authentication)")
    ctx.fail(path, value, "expected basic")
