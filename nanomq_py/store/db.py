"""The SQLite file: schema, opening (a damaged file is moved aside), and the two
connections: the writer, used only by the writer thread (one batch per
transaction), and the reader, used on the hub for paging queued messages in.

WAL mode lets the reader see the last committed state while a commit runs.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from itertools import groupby
from operator import itemgetter

log = logging.getLogger("nanomq.store")

FILE_NAME = "nanomq.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS retained(
    topic TEXT PRIMARY KEY, payload BLOB, qos INT, props BLOB,
    from_client TEXT, from_user TEXT, expires REAL);
CREATE TABLE IF NOT EXISTS sessions(
    client_id TEXT PRIMARY KEY, expiry REAL, expires REAL, online INT,
    will BLOB, will_at REAL);
CREATE TABLE IF NOT EXISTS subs(
    client_id TEXT, filter TEXT, qos INT, no_local INT, rap INT, rh INT, sub_id INT,
    PRIMARY KEY(client_id, filter)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rel(
    client_id TEXT, pid INT, PRIMARY KEY(client_id, pid)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS msgs(
    client_id TEXT, seq INT, pid INT, comp INT, qos INT, retain INT,
    sub_ids BLOB, topic TEXT, payload BLOB, props BLOB, from_client TEXT, from_user TEXT,
    expires REAL, PRIMARY KEY(client_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS queue(seq INTEGER PRIMARY KEY, name TEXT, item BLOB);
CREATE INDEX IF NOT EXISTS queue_by_name ON queue(name, seq);
"""


class StoreDirectoryError(OSError):
    """The store directory cannot be created or written: the start stops."""


class Database:
    def __init__(self, directory, synchronous):
        self.directory = directory
        self.path = os.path.join(directory, FILE_NAME)
        self.synchronous = synchronous
        _prepare_directory(directory)
        try:
            self.writer, self.reader = self._open()
        except sqlite3.DatabaseError as exc:
            moved = self._move_aside()
            log.error(
                "store %s is damaged (%s): moved aside to %s; starting with an empty store",
                self.path,
                exc,
                moved,
            )
            self.writer, self.reader = self._open()

    def _open(self):
        writer = None
        try:
            writer = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            writer.execute("PRAGMA journal_mode=WAL")
            writer.execute(f"PRAGMA synchronous={self.synchronous}")
            writer.execute("PRAGMA wal_autocheckpoint=256")  # the WAL stays near 1 MB on a small device
            writer.execute("PRAGMA journal_size_limit=1048576")  # and shrinks back after a burst
            if writer.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
            writer.executescript(_SCHEMA)
            reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            reader.execute("PRAGMA query_only=1")
            return writer, reader
        except sqlite3.OperationalError as exc:
            # The file cannot be opened or written (permissions, disk full, another
            # process holds it): not damage, so it is never moved aside; the start stops.
            if writer is not None:
                writer.close()
            raise StoreDirectoryError(f"cannot open the store {self.path}: {exc}") from None
        except sqlite3.DatabaseError:  # not a database, malformed, failed quick_check
            if writer is not None:
                writer.close()
            raise

    def _move_aside(self):
        stamp = time.strftime("%Y%m%dT%H%M%S")
        moved = f"{self.path}.damaged-{stamp}"
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.replace(self.path + suffix, moved + suffix)
        return moved

    def commit(self, ops):
        """Run one batch in one transaction (on the writer thread)."""
        conn = self.writer
        conn.execute("BEGIN")
        try:
            for sql, group in groupby(filter(None, ops), itemgetter(0)):  # runs of one statement
                conn.executemany(sql, [params for _, params in group])
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def size(self):
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(self.path + suffix)
            except OSError:
                pass
        return total

    def close(self):
        self.reader.close()
        self.writer.close()


def _prepare_directory(directory):
    try:
        os.makedirs(directory, exist_ok=True)
        probe = os.path.join(directory, ".nanomq-write-test")
        with open(probe, "wb") as handle:
            handle.write(b"x")
        os.remove(probe)
    except OSError as exc:
        raise StoreDirectoryError(
            f"cannot use the store directory {directory}: {exc.strerror or exc}"
        ) from None
