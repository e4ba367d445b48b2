"""Shared fixtures: a real broker process per test module, and a factory for
brokers with their own configuration."""

from __future__ import annotations

import pytest
from broker_process import start_broker
from mqtt_client import TestClient


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """One broker on the default configuration, shared by a module's tests
    (each test uses its own client ids and topics)."""
    proc = start_broker(tmp_path_factory.mktemp("broker"))
    yield proc
    proc.stop()


@pytest.fixture
def broker_factory(tmp_path):
    """start(conf_text, args=()) -> a broker with that configuration, stopped after the test."""
    started = []

    def start(conf="", args=(), **kwargs):
        path = tmp_path / f"b{len(started)}"
        path.mkdir()
        proc = start_broker(path, conf, args, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def client_factory(broker):
    """make(**kwargs) -> a TestClient on the shared broker, disconnected after the test."""
    made = []

    def make(target=None, **kwargs):
        client = TestClient(target or broker, **kwargs)
        made.append(client)
        return client

    yield make
    _close_clients(made)


@pytest.fixture
def clients():
    """make(target, **kwargs) -> a connected TestClient on any broker (for tests with
    several brokers, e.g. a bridge's edge and upstream), disconnected after the test."""
    made = []

    def make(target, **kwargs):
        client = TestClient(target, **kwargs)
        made.append(client)
        client.connect()
        return client

    yield make
    _close_clients(made)


def _close_clients(made):
    for client in made:
        # Disconnect first: paho's loop thread then ends at once instead of
        # waiting out its one-second select.
        try:
            client.paho.disconnect()
        except Exception:
            pass
        client.paho.loop_stop()
