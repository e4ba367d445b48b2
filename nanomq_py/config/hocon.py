"""nanomq.conf (HOCON, read by pyhocon) -> the nested dict of plain values.

pyhocon only logs an include it cannot find and carries on; here a missing include
stops the start, named by the key it was meant to fill.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings

from .context import ConfigError
from .tree import read_text


def read_hocon(path):
    from pyhocon import ConfigFactory
    from pyhocon.exceptions import ConfigException
    from pyparsing import ParseBaseException

    text = read_text(path)
    pyhocon_log = logging.getLogger("pyhocon.config_parser")
    watcher = _IncludeWatcher()
    saved_propagate = pyhocon_log.propagate
    pyhocon_log.addHandler(watcher)
    pyhocon_log.propagate = False
    try:
        with warnings.catch_warnings():  # pyhocon reports missing includes with the deprecated logger.warn
            warnings.simplefilter("ignore", DeprecationWarning)
            parsed = ConfigFactory.parse_string(text, basedir=os.path.dirname(path) or ".")
    except ParseBaseException as exc:
        where = f"line {exc.lineno}, column {exc.col}"
        raise ConfigError(
            f"{path}: HOCON syntax error at {where} ({exc.line.strip()!r}): {exc.msg}"
        ) from None
    except ConfigException as exc:
        raise ConfigError(f"{path}: {' '.join(str(exc).split())}") from None
    finally:
        pyhocon_log.removeHandler(watcher)
        pyhocon_log.propagate = saved_propagate
    if watcher.missing:
        _fail_missing_include(path, text, watcher.missing[0])
    return _plain(parsed)


class _IncludeWatcher(logging.Handler):
    """Collects the paths pyhocon could not include (it only logs them)."""

    def __init__(self):
        super().__init__()
        self.missing = []

    def emit(self, record):
        if record.getMessage().startswith("Cannot include"):
            self.missing.append(str(record.args[0]) if record.args else record.getMessage())


def _fail_missing_include(path, text, missing):
    for match in re.finditer(
        r'([\w.-]+)\s*[=:]?\s*\{\s*include\s+(?:required\(\s*)?(?:file\(\s*)?"([^"]+)"', text
    ):
        key, included = match.groups()
        if missing.endswith(included):
            key = f"auth.{key}" if key in ("password", "acl") else key
            raise ConfigError(
                f'{path}: {key} = {{include "{included}"}} is invalid: {missing} does not exist or cannot be read'
            )
    raise ConfigError(
        f"{path}: include {json.dumps(missing)} is invalid: the file does not exist or cannot be read"
    )


def _plain(value):
    """pyhocon's ConfigTree/ConfigList -> plain dicts and lists (order kept)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
