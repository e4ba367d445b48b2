"""The `nanomq` command line as users run it: real processes, a real MQTT client."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers_cli import (
    REPO,
    cli_env,
    dead_pid,
    listener_of,
    process_exists,
    read_pid,
    run_nanomq,
    spawn_nanomq,
    write_conf,
)
from mqtt_client import TestClient

LOCAL_TCP = 'listeners.tcp.bind = "127.0.0.1:0"\n'


def round_trip(target):
    """A real client subscribes, publishes QoS 1 and receives its own message."""
    client = TestClient(target)
    client.connect()
    try:
        client.subscribe("cli/test", 1)
        client.publish("cli/test", b"hello", qos=1)
        (message,) = client.expect()
        assert (message.topic, message.payload) == ("cli/test", b"hello")
    finally:
        client.disconnect()


@pytest.fixture
def cleanup_pids():
    """Pids of daemons a test started; any still alive at the end is killed."""
    pids = []
    yield pids
    for pid in pids:
        if process_exists(pid):
            os.kill(pid, signal.SIGKILL)


def test_help_lists_commands_and_start_flags(tmp_path):
    top = run_nanomq(tmp_path, "--help")
    assert top.returncode == 0
    for command in ("start", "stop", "restart"):
        assert command in top.stdout
    start = run_nanomq(tmp_path, "start", "--help")
    assert start.returncode == 0
    for flag in ("--conf", "--old_conf", "--daemon", "--log_level", "--url", "--msq_len", "--cert"):
        assert flag in start.stdout


def test_start_serves_mqtt_and_stop_ends_it(tmp_path):
    conf = write_conf(tmp_path, LOCAL_TCP)
    broker = spawn_nanomq(tmp_path, "start", "--conf", str(conf))
    try:
        assert "NanoMQ Broker is started successfully!" in broker.lines
        assert read_pid(broker.pid_file) == broker.proc.pid
        round_trip(broker)
        stop = run_nanomq(tmp_path, "stop")
        assert stop.returncode == 0, stop.stderr
        assert f"NanoMQ is stopped (pid {broker.proc.pid})" in stop.stdout
        assert broker.proc.wait(10) == 0
        assert not Path(broker.pid_file).exists()
    finally:
        broker.stop()


def test_stop_with_nothing_running_says_so(tmp_path):
    result = run_nanomq(tmp_path, "stop")
    assert result.returncode == 1
    assert "There is no running NanoMQ instance." in result.stderr


def test_stale_pid_file_is_removed_by_stop_and_replaced_by_start(tmp_path):
    pid_file = tmp_path / "nanomq.pid"
    pid_file.write_text(f"{dead_pid()}\n")
    result = run_nanomq(tmp_path, "stop")
    assert result.returncode == 1 and "There is no running NanoMQ instance." in result.stderr
    assert not pid_file.exists()

    pid_file.write_text(f"{dead_pid()}\n")
    broker = spawn_nanomq(tmp_path, "start", "--url", "nmq-tcp://127.0.0.1:0")
    try:
        assert read_pid(pid_file) == broker.proc.pid
    finally:
        broker.stop()


def test_second_start_refuses_while_one_runs(tmp_path):
    broker = spawn_nanomq(tmp_path, "start", "--url", "nmq-tcp://127.0.0.1:0")
    try:
        second = run_nanomq(tmp_path, "start", "--url", "nmq-tcp://127.0.0.1:0")
        assert second.returncode == 1
        assert f"NanoMQ is already running (pid {broker.proc.pid})" in second.stderr
        assert read_pid(broker.pid_file) == broker.proc.pid
    finally:
        broker.stop()


def test_bad_config_exits_2_with_one_line(tmp_path):
    conf = write_conf(tmp_path, LOCAL_TCP + 'webhook { url = "http://127.0.0.1:9", pool_size = 0 }\n')
    result = run_nanomq(tmp_path, "start", "--conf", str(conf))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"{conf}: webhook.pool_size = 0 is invalid: expected an integer >= 1"
    ]
    assert result.stdout == ""
    assert not (tmp_path / "nanomq.pid").exists()


def test_bad_flag_value_names_the_flag(tmp_path):
    result = run_nanomq(tmp_path, "start", "--url", "nmq-tcp://127.0.0.1:0", "--msq_len", "0")
    assert result.returncode == 2
    assert result.stderr.strip() == 'command line: --msq_len = "0" is invalid: expected an integer >= 1'


def test_port_in_use_fails_naming_the_address(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_nanomq(tmp_path, "start", "--url", f"nmq-tcp://127.0.0.1:{port}")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("NanoMQ failed to start:")
    assert f"127.0.0.1:{port}" in lines[0]
    assert not (tmp_path / "nanomq.pid").exists()


def test_flags_beat_environment_beat_file(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        conf = write_conf(tmp_path, f'listeners.tcp.bind = "127.0.0.1:{busy}"\n')
        env = cli_env(tmp_path, NANOMQ_BROKER_URL=f"nmq-tcp://127.0.0.1:{busy}")
        broker = spawn_nanomq(
            tmp_path, "start", "--conf", str(conf), "--url", "nmq-tcp://127.0.0.1:0", env=env
        )
    try:
        assert broker.port != busy
        round_trip(broker)
    finally:
        broker.stop()


def test_sigint_stops_cleanly(tmp_path):
    broker = spawn_nanomq(tmp_path, "start", "--url", "nmq-tcp://127.0.0.1:0")
    try:
        broker.proc.send_signal(signal.SIGINT)
        assert broker.proc.wait(10) == 0
        assert not Path(broker.pid_file).exists()
    finally:
        broker.stop()


def test_launcher_script_runs_from_the_checkout(tmp_path):
    env = cli_env(tmp_path)
    env.pop("PYTHONPATH")
    env["PYTHON"] = sys.executable
    launcher = str(REPO / "scripts" / "nanomq")
    broker = spawn_nanomq(
        tmp_path, "start", "--url", "nmq-tcp://127.0.0.1:0", env=env, command=lambda *a: [launcher, *a]
    )
    try:
        round_trip(broker)
        stop = run_nanomq(tmp_path, "stop", env=env, command=lambda *a: [launcher, *a])
        assert stop.returncode == 0, stop.stderr
        assert broker.proc.wait(10) == 0
    finally:
        broker.stop()


def test_daemon_mode_returns_after_start_then_stop(tmp_path, cleanup_pids):
    conf = write_conf(tmp_path, LOCAL_TCP + "system.daemon = false\n")
    result = run_nanomq(tmp_path, "start", "--conf", str(conf), "-d")
    assert result.returncode == 0, result.stderr
    assert "NanoMQ Broker is started successfully!" in result.stdout
    pid = read_pid(tmp_path / "nanomq.pid")
    cleanup_pids.append(pid)
    assert process_exists(pid)
    round_trip(listener_of(result.stdout))
    stop = run_nanomq(tmp_path, "stop")
    assert stop.returncode == 0, stop.stderr
    assert not process_exists(pid)
    assert not (tmp_path / "nanomq.pid").exists()


def test_daemon_start_failure_is_reported_to_the_caller(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        conf = write_conf(tmp_path, f'listeners.tcp.bind = "127.0.0.1:{port}"\nsystem.daemon = true\n')
        result = run_nanomq(tmp_path, "start", "--conf", str(conf))
    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr
    assert not (tmp_path / "nanomq.pid").exists()


def test_restart_replaces_the_running_daemon(tmp_path, cleanup_pids):
    first = run_nanomq(tmp_path, "start", "-d", "--url", "nmq-tcp://127.0.0.1:0")
    assert first.returncode == 0, first.stderr
    old_pid = read_pid(tmp_path / "nanomq.pid")
    cleanup_pids.append(old_pid)
    second = run_nanomq(tmp_path, "restart", "-d", "--url", "nmq-tcp://127.0.0.1:0")
    assert second.returncode == 0, second.stderr
    new_pid = read_pid(tmp_path / "nanomq.pid")
    cleanup_pids.append(new_pid)
    assert new_pid != old_pid and not process_exists(old_pid)
    round_trip(listener_of(second.stdout))
    assert run_nanomq(tmp_path, "stop").returncode == 0


@pytest.mark.skipif(shutil.which("dash") is None, reason="needs dash (a POSIX sh without bashisms)")
def test_init_script_start_status_reload_stop(tmp_path, cleanup_pids):
    conf = write_conf(tmp_path, LOCAL_TCP)
    env = cli_env(
        tmp_path, NANOMQ_BIN=str(REPO / "scripts" / "nanomq"), NANOMQ_CONF=str(conf), PYTHON=sys.executable
    )

    def init(action):
        script = str(REPO / "etc" / "init.d" / "nanomq")
        return subprocess.run(["dash", script, action], capture_output=True, text=True, env=env, timeout=30)

    assert init("status").returncode == 3
    started = init("start")
    assert started.returncode == 0, started.stderr
    pid = read_pid(tmp_path / "nanomq.pid")
    cleanup_pids.append(pid)
    round_trip(listener_of(started.stdout))
    status = init("status")
    assert status.returncode == 0 and f"running (pid {pid})" in status.stdout
    reload = init("reload")
    assert reload.returncode == 0 and f"NanoMQ (pid {pid}) is reloading" in reload.stdout
    round_trip(listener_of(started.stdout))  # the daemon re-read its file and serves on
    assert read_pid(tmp_path / "nanomq.pid") == pid
    assert init("stop").returncode == 0
    assert not process_exists(pid)
    assert init("status").returncode == 3


def test_config_is_read_before_gevent_is_imported(tmp_path):
    """The CLI forks to daemonize after loading the config: nothing before that may import gevent."""
    conf = write_conf(tmp_path, (REPO / "etc" / "nanomq.conf").read_text())
    code = (
        "import sys\n"
        "import nanomq_py.cli, nanomq_py.config, nanomq_py.logs\n"
        f"settings, _ = nanomq_py.config.load_settings({str(conf)!r}, env={{}})\n"
        "nanomq_py.logs.setup_logging(settings.log)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('gevent', 'greenlet')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
