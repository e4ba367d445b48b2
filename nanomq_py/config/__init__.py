"""Configuration: nanomq.conf (HOCON) or NanoMQ's old key=value file, then
NANOMQ_* environment variables, then command-line flags -> `Settings`.

Plan: each source is turned into one nested dict in the HOCON key space
(`mqtt.max_packet_size`, `listeners.tcp.bind`, ...), later sources written on
top of earlier ones, and the merged dict is validated once into the typed
settings classes of `nanomq_py.settings`. Every value remembers where it came from
(file, environment variable, flag, old-file key), so a bad value stops the
start with one `ConfigError` line naming that place, the key, the value and
what is allowed. Keys nobody reads become warnings.

Nothing here imports gevent: the CLI loads the config before it daemonizes.
"""

from __future__ import annotations

import os

from nanomq_py.settings import DEFAULT_PID_FILE

from .build import build_settings
from .context import ConfigError, Context
from .environment import ENV_KEYS, apply_environment, apply_override
from .hocon import read_hocon
from .log import LOG_LEVELS, LOG_TARGETS
from .old_conf import read_old_conf
from .webhook import PAYLOAD_ENCODINGS, WEBHOOK_EVENTS

__all__ = [
    "DEFAULT_PID_FILE",
    "ENV_KEYS",
    "LOG_LEVELS",
    "LOG_TARGETS",
    "PAYLOAD_ENCODINGS",
    "WEBHOOK_EVENTS",
    "ConfigError",
    "load_settings",
]


def load_settings(conf_path=None, old_conf_path=None, env=os.environ, overrides=None):
    """Build `Settings` from a HOCON file or an old-style file, the environment and overrides.

    `overrides` is a list of (label, key, value) triples from the command line, e.g.
    ("--log_level", "log.level", "debug"); besides dotted HOCON keys, key "url" adds a
    listener from an nmq-tcp:// / tls+nmq-tcp:// / nmq-ws:// / nmq-wss:// URL, and
    "log.to+" / "log.to-" add or remove one log target. Returns (settings, warnings).
    """
    if conf_path is None and old_conf_path is None:
        conf_path = env.get("NANOMQ_CONF_PATH") or None
    if conf_path is not None and old_conf_path is not None:
        raise ConfigError(f"{old_conf_path}: give either --conf or --old_conf, not both (also {conf_path})")
    source = conf_path or old_conf_path or "<built-in defaults>"
    ctx = Context(source)
    if conf_path is not None:
        tree = read_hocon(conf_path)
    elif old_conf_path is not None:
        tree = read_old_conf(ctx, old_conf_path)
    else:
        tree = {}
    apply_environment(ctx, tree, env)
    for label, key, value in overrides or ():
        apply_override(ctx, tree, label, key, value, "command line")
    settings = build_settings(ctx, tree)
    settings.pid_file = env.get("NANOMQ_PID_FILE") or DEFAULT_PID_FILE
    settings.source = source
    return settings, ctx.warnings
