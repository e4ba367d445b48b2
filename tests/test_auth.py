"""Authentication: plain, sha256 and PBKDF2 passwords from an included
pwd.conf (the PBKDF2 line written by scripts/nanomq-passwd), anonymous
clients on and off, CONNACK codes in MQTT 3.1, 3.1.1 and 5 read off the
wire, the webhook's connack reason, and password hashing that leaves the
event loop running."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time

import gevent
import pytest
from broker_process import REPO, start_broker
from mqtt_client import unique_id
from raw_client import RawClient
from webhook_sink import WebhookSink

from nanomq_py.broker.auth import (
    BAD_CREDENTIALS,
    NOT_AUTHORIZED,
    SERVER_BUSY,
    SUCCESS,
    Authenticator,
)
from nanomq_py.broker.events import ClientInfo
from nanomq_py.broker.passwords import hash_password, password_matches
from nanomq_py.settings import AuthSettings

PASSWD = REPO / "scripts" / "nanomq-passwd"
SHA256_BOB = "sha256$pepper$" + hashlib.sha256(b"pepper" + b"bob-pw").hexdigest()


def nanomq_passwd(username, password, *args):
    """Run scripts/nanomq-passwd with the password on stdin; returns (exit code, stdout, stderr)."""
    done = subprocess.run(
        [str(PASSWD), username, *args],
        input=password,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PYTHON": sys.executable},
    )
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def sink():
    with WebhookSink() as server:
        yield server


@pytest.fixture(scope="module")
def locked(tmp_path_factory, sink):
    """allow_anonymous = false; alice plain, bob sha256, carol PBKDF2 from nanomq-passwd."""
    directory = tmp_path_factory.mktemp("locked")
    code, carol, _ = nanomq_passwd("carol", "carol-pw\n", "--iterations", "2000")
    assert code == 0
    (directory / "pwd.conf").write_text(f'"alice": "alice-pw"\n"bob": "{SHA256_BOB}"\n{carol}')
    conf = f"""
auth {{
  allow_anonymous = false
  password = {{include "pwd.conf"}}
}}
webhook {{
  url = "{sink.url}"
  events = [{{event = on_client_connack}}]
}}
"""
    proc = start_broker(directory, conf)
    yield proc
    proc.stop()
    assert "Traceback" not in proc.output()


@pytest.fixture(scope="module")
def open_with_users(tmp_path_factory):
    conf = 'auth { allow_anonymous = true, password = {"alice" = "alice-pw"} }'
    proc = start_broker(tmp_path_factory.mktemp("open"), conf)
    yield proc
    proc.stop()


def connack_code(broker, version, username=None, password=None, client_id=None):
    """The CONNACK return/reason code as sent on the wire; the connection is closed after."""
    with RawClient(broker, version=version) as client:
        return client.connect(
            client_id or unique_id("auth"), username=username, password=password
        ).reason_code


@pytest.mark.parametrize(
    "version, username, password, code",
    [
        (4, None, None, 5),
        (4, "alice", b"alice-pw", 0),
        (4, "alice", b"wrong", 4),
        (4, "alice", None, 4),
        (4, "nobody", b"alice-pw", 4),
        (4, "bob", b"bob-pw", 0),
        (4, "bob", b"wrong", 4),
        (4, "carol", b"carol-pw", 0),
        (4, "carol", b"carol-pw\n", 4),
        (3, None, None, 5),
        (3, "alice", b"alice-pw", 0),
        (3, "carol", b"wrong", 4),
        (5, None, None, 0x87),
        (5, "alice", b"alice-pw", 0),
        (5, "alice", b"wrong", 0x86),
        (5, "nobody", b"x", 0x86),
        (5, "carol", b"carol-pw", 0),
    ],
)
def test_connack_codes_without_anonymous_access(locked, version, username, password, code):
    assert connack_code(locked, version, username, password) == code


def test_a_verified_pbkdf2_password_keeps_working_on_reconnect(locked):
    for _ in range(3):
        assert connack_code(locked, 4, "carol", b"carol-pw") == 0
    assert connack_code(locked, 4, "carol", b"not-carol") == 4


def test_anonymous_allowed_but_listed_users_need_their_password(open_with_users):
    assert connack_code(open_with_users, 4) == 0
    assert connack_code(open_with_users, 4, "alice", b"alice-pw") == 0
    assert connack_code(open_with_users, 4, "alice", b"wrong") == 4
    assert connack_code(open_with_users, 5, "stranger", b"x") == 0x86


def test_without_an_auth_block_everyone_connects(broker):
    assert connack_code(broker, 4) == 0
    assert connack_code(broker, 5, "anyone", b"anything") == 0


def test_the_webhook_connack_event_says_why(locked, sink):
    ids = {unique_id("why"): None for _ in range(3)}
    good, bad, anonymous = ids
    assert connack_code(locked, 4, "alice", b"alice-pw", client_id=good) == 0
    assert connack_code(locked, 4, "alice", b"wrong", client_id=bad) == 4
    assert connack_code(locked, 5, client_id=anonymous) == 0x87
    deadline = time.monotonic() + 10
    while True:
        bodies = sink.bodies()
        for body in bodies:
            if body["clientid"] in ids:
                ids[body["clientid"]] = body["conn_ack"]
        if all(v is not None for v in ids.values()):
            break
        sink.wait_for(len(bodies) + 1, timeout=max(deadline - time.monotonic(), 0.01))
    assert ids == {good: "success", bad: "bad_username_or_password", anonymous: "not_authorized"}


def test_nanomq_passwd_refuses_an_empty_password():
    code, out, err = nanomq_passwd("dave", "")
    assert (code, out) == (1, "")
    assert "empty" in err


def test_stored_password_forms():
    pbkdf2 = hash_password("s3cret", iterations=1000)
    assert pbkdf2.startswith("pbkdf2_sha256$1000$")
    assert password_matches(pbkdf2, b"s3cret")
    assert not password_matches(pbkdf2, b"s3cret ")
    assert password_matches(SHA256_BOB, b"bob-pw")
    assert password_matches(SHA256_BOB.upper().replace("SHA256$PEPPER$", "sha256$pepper$"), b"bob-pw")
    assert password_matches("plain", b"plain")
    assert not password_matches("plain", b"Plain")
    for broken in ("pbkdf2_sha256$many$salt$AAAA", "pbkdf2_sha256$1000", "sha256$no-digest-part"):
        assert not password_matches(broken, b"anything")


def _info(username):
    return ClientInfo("c1", username, 4, 60, "127.0.0.1", 50000, 0, True)


def test_pbkdf2_runs_once_per_user_and_outside_the_event_loop():
    stored = hash_password("pw", iterations=200_000)
    auth = Authenticator(AuthSettings(allow_anonymous=False, users={"u": stored}))
    ticks = []

    def ticker():
        while True:
            ticks.append(time.monotonic())
            gevent.sleep(0.001)

    running = gevent.spawn(ticker)
    gevent.sleep(0)
    started = time.monotonic()
    assert auth.authenticate(_info("u"), b"pw") == SUCCESS
    took = time.monotonic() - started
    during = [t for t in ticks if started < t < started + took]
    assert len(during) >= 5, f"the event loop ran {len(during)} times during a {took:.3f} s hash"
    again = time.monotonic()
    assert auth.authenticate(_info("u"), b"pw") == SUCCESS
    assert time.monotonic() - again < took / 10  # remembered: no second PBKDF2
    assert auth.authenticate(_info("u"), b"wrong") != SUCCESS
    assert auth.authenticate(_info(None), None) == NOT_AUTHORIZED
    running.kill()


def test_a_password_guessing_flood_is_refused_as_busy_not_queued_without_end():
    auth = Authenticator(
        AuthSettings(allow_anonymous=False, users={"u": hash_password("pw", iterations=20_000)})
    )
    attempts = [gevent.spawn(auth.authenticate, _info("u"), b"guess") for _ in range(20)]
    gevent.joinall(attempts, timeout=30)
    verdicts = [attempt.value for attempt in attempts]
    assert verdicts.count(SERVER_BUSY) == 3  # one hashing, sixteen waiting, the rest refused at once
    assert verdicts.count(BAD_CREDENTIALS) == 17
    assert auth.authenticate(_info("u"), b"pw") == SUCCESS  # the queue drained: served again
