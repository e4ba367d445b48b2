"""Logging as NanoMQ configures it: `log { to, level, dir, file, rotation }`.

Everything the broker logs goes through loggers named "nanomq.*"; this module
gives the "nanomq" logger its handlers (stderr, a rotating file, syslog) and
its level, one line per record: time, level, logger, message. `logging.handlers`
(which imports socket, queue, copy, ...) is imported only for a file or syslog.
"""

from __future__ import annotations

import logging
import os
import sys

TRACE = 5  # below DEBUG: NanoMQ's "trace"
LEVELS = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
}
_LEVEL_NAMES = {number: name.upper() for name, number in LEVELS.items()}
logging.addLevelName(TRACE, "TRACE")
_ROOT = "nanomq"
_SYSLOG_SOCKET = "/dev/log"
_SYSLOG_LINE = "nanomq[%(process)d]: %(nanomq_level)s %(name)s: %(message)s"


class _Formatter(logging.Formatter):
    """`2024-01-31 12:00:00.123 WARN  nanomq.webhook: message`, with NanoMQ's level names."""

    def __init__(self, fmt):
        super().__init__(fmt, datefmt="%Y-%m-%d %H:%M:%S")

    def format(self, record):
        record.nanomq_level = _LEVEL_NAMES.get(record.levelno, record.levelname)
        return super().format(record)


def setup_logging(log_settings) -> logging.Logger:
    """(Re)configure the "nanomq" logger from a `LogSettings`; returns it.

    Raises OSError when the log file cannot be opened (the caller reports it).
    """
    logger = logging.getLogger(_ROOT)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.setLevel(LEVELS[log_settings.level])
    logger.propagate = False
    line = "%(asctime)s.%(msecs)03d %(nanomq_level)-5s %(name)s: %(message)s"
    for target in log_settings.to:
        if target == "console":
            handler = logging.StreamHandler(sys.stderr)
        elif target == "file":
            from logging.handlers import RotatingFileHandler

            os.makedirs(log_settings.dir, exist_ok=True)
            handler = RotatingFileHandler(
                os.path.join(log_settings.dir, log_settings.file),
                maxBytes=log_settings.rotation_size,
                backupCount=log_settings.rotation_count,
                encoding="utf-8",
            )
        else:
            handler = _syslog_handler()
        handler.setFormatter(_Formatter(line if target != "syslog" else _SYSLOG_LINE))
        logger.addHandler(handler)
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    return logger


def check_log_file(log_settings) -> None:
    """OSError now if the log file of these settings cannot be opened for appending,
    before setup_logging takes the current handlers down (a reload keeps them then)."""
    if "file" in log_settings.to:
        os.makedirs(log_settings.dir, exist_ok=True)
        with open(os.path.join(log_settings.dir, log_settings.file), "a", encoding="utf-8"):
            pass


def console_shows(log_settings, level) -> bool:
    """Whether a record of `level` reaches stderr with these settings."""
    return "console" in log_settings.to and LEVELS[log_settings.level] <= level


def _syslog_handler():
    """The local syslog socket, else syslog over UDP on localhost (as Python's logging does)."""
    from logging.handlers import SYSLOG_UDP_PORT, SysLogHandler

    class _SysLogHandler(SysLogHandler):
        def mapPriority(self, levelName):  # noqa: N802 (logging's name)
            return "debug" if levelName == "TRACE" else super().mapPriority(levelName)

    if os.path.exists(_SYSLOG_SOCKET):
        try:
            return _SysLogHandler(address=_SYSLOG_SOCKET)
        except OSError:
            pass
    return _SysLogHandler(address=("localhost", SYSLOG_UDP_PORT))
