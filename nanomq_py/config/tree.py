"""What every source reader shares: reading its file, and writing into the one nested
dict in the HOCON key space (`mqtt.max_packet_size`, `listeners.tcp.bind`, ...) that
later sources overwrite and that is validated once at the end."""

from __future__ import annotations

from .context import ConfigError


def read_text(path):
    """The file's text, or a one-line ConfigError saying why it cannot be used."""
    try:
        with open(path, encoding="utf-8") as fd:
            return fd.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None


def get(tree, path, default=None):
    node = tree
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def put(tree, path, value):
    node = tree
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[path[-1]] = value
