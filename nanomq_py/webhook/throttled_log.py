"""A warning that is logged at most once per interval, whatever the event rate.

A dead endpoint or a full queue concerns every event; logging each one would
cost the broker's CPU and flood the log. Repeats inside the interval are only
counted, and the next line that gets through says how many were suppressed.
"""

from __future__ import annotations

import time


class ThrottledWarning:
    __slots__ = ("_logger", "_interval", "_next_at", "_suppressed")

    def __init__(self, logger, interval: float = 10.0):
        self._logger = logger
        self._interval = interval
        self._next_at = 0.0
        self._suppressed = 0

    def warning(self, message: str, *args) -> None:
        now = time.monotonic()
        if now < self._next_at:
            self._suppressed += 1
            return
        self._next_at = now + self._interval
        if self._suppressed:
            message += " (%d similar warnings suppressed)"
            args += (self._suppressed,)
            self._suppressed = 0
        self._logger.warning(message, *args)
