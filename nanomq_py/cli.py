"""`nanomq start|stop|restart`: NanoMQ's command line, for nanomq_py.

`start` loads and validates the configuration (file < NANOMQ_* environment <
flags), refuses to run twice (pid file), optionally daemonizes, then runs
`nanomq_py.server.Server` until SIGTERM/SIGINT. gevent is imported only after
daemonizing, so no hub or thread pool ever crosses a fork; this module
monkey-patches nothing (the server decides).

`stop` sends SIGTERM to the pid in the pid file and waits for the process to
end; `restart` is stop then start with the given arguments.

The command line and the configuration are each read in a short-lived forked
child (`_in_child`), which sends its result back as `marshal` data: argparse
(with gettext, locale and shutil), the HOCON parser and pickle never load into
the process that becomes the broker.
"""

from __future__ import annotations

import logging
import marshal
import os
import signal
import sys
import time
import traceback
from types import SimpleNamespace

from nanomq_py import __version__
from nanomq_py.logs import LEVELS, console_shows, setup_logging
from nanomq_py.settings import DEFAULT_PID_FILE, from_data, to_data

STARTED = "NanoMQ Broker is started successfully!"
NOT_RUNNING = "There is no running NanoMQ instance."
STOP_TIMEOUT = 10.0

log = logging.getLogger("nanomq.cli")


def main(argv=None) -> int:
    """The `nanomq` command; the arguments are parsed in a child (argparse costs the broker 1 MB)."""
    ok, parsed = _in_child(_parse, argv)
    if not ok:
        sys.stderr.write(parsed or "nanomq: the argument parser process died\n")
        return 1
    if not isinstance(parsed, dict):
        return parsed  # argparse's exit status: it printed the help, the version or the usage error
    args = SimpleNamespace(**parsed)
    return _COMMANDS[args.command](args)


def _in_child(function, *args):
    """(True, `function(*args)`) computed in a forked child, else (False, its traceback),
    or (False, None) when the child died. What the child prints goes where ours does;
    the result comes back through a pipe as `marshal` data (builtin types only)."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_fd)
            try:
                payload = marshal.dumps((True, function(*args)))
            except BaseException:
                payload = marshal.dumps((False, traceback.format_exc()))
            with os.fdopen(write_fd, "wb") as out:
                out.write(payload)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(0)
    os.close(write_fd)
    payload = _read_to_end(read_fd)
    os.waitpid(pid, 0)
    return marshal.loads(payload) if payload else (False, None)


def _read_to_end(fd):
    """Every byte until EOF, then close. Inside the running broker (a reload) the
    wait is in gevent's hub, so clients are served while the child parses."""
    gevent_os = sys.modules.get("gevent.os")
    if gevent_os is None:
        with os.fdopen(fd, "rb") as source:
            return source.read()
    gevent_os.make_nonblocking(fd)
    chunks = []
    try:
        while True:
            data = gevent_os.nb_read(fd, 65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- arguments


def _parse(argv):
    """Runs in a child (see `main`): the parsed arguments as a dict, or the exit status
    once argparse has printed the help, the version or a usage error."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code is None else exc.code
    if args.command is None:
        parser.print_help()
        return 2
    return vars(args)


def _flag_bool(text):
    import argparse

    value = text.strip().lower()
    if value in ("true", "yes", "on", "1"):
        return True
    if value in ("false", "no", "off", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def _parser():
    import argparse

    parser = argparse.ArgumentParser(
        prog="nanomq",
        description="nanomq_py: a NanoMQ-compatible MQTT broker with WebHook integration.",
        epilog="Precedence: config file < NANOMQ_* environment variables < command-line flags. "
        f"Pid file: $NANOMQ_PID_FILE or {DEFAULT_PID_FILE}.",
    )
    parser.add_argument("--version", action="version", version=f"nanomq_py {__version__}")
    parser.set_defaults(command=None)
    commands = parser.add_subparsers(title="commands", metavar="{start,stop,restart,reload}")

    options = argparse.ArgumentParser(add_help=False)
    files = options.add_argument_group("configuration")
    files.add_argument(
        "--conf", metavar="FILE", help="nanomq.conf (HOCON); default $NANOMQ_CONF_PATH or built-in"
    )
    files.add_argument("--old_conf", metavar="FILE", help="NanoMQ's old key=value configuration file")
    broker = options.add_argument_group("broker")
    broker.add_argument(
        "--url",
        action="append",
        metavar="URL",
        help="listener: nmq-tcp://host:port, tls+nmq-tcp://host:port, nmq-ws://host:port/path, "
        "nmq-wss://host:port/path (repeatable; replaces the file's listeners of that kind)",
    )
    broker.add_argument(
        "-d",
        "--daemon",
        nargs="?",
        const=True,
        type=_flag_bool,
        metavar="true|false",
        help="run in the background (system.daemon)",
    )
    broker.add_argument(
        "-s", "--property_size", metavar="N", help="max MQTT user properties (mqtt.property_size)"
    )
    broker.add_argument("-S", "--msq_len", metavar="N", help="per-session queue length (mqtt.max_mqueue_len)")
    broker.add_argument(
        "-D", "--qos_duration", metavar="SECONDS", help="QoS 1/2 retry interval (mqtt.retry_interval)"
    )
    for short, name in (("-t", "--tq_thread"), ("-T", "--max_tq_thread"), ("-n", "--parallel")):
        broker.add_argument(short, name, metavar="N", help="accepted for NanoMQ compatibility; ignored")
    tls = options.add_argument_group("TLS (listeners.ssl)")
    tls.add_argument("--cacert", metavar="FILE", help="PEM CA certificates (cacertfile)")
    tls.add_argument("-E", "--cert", metavar="FILE", help="PEM certificate (certfile)")
    tls.add_argument("--key", metavar="FILE", help="PEM private key (keyfile)")
    tls.add_argument("--keypass", metavar="PASSWORD", help="private key password (key_password)")
    tls.add_argument(
        "--verify", nargs="?", const=True, type=_flag_bool, metavar="true|false", help="verify_peer"
    )
    tls.add_argument(
        "--fail", nargs="?", const=True, type=_flag_bool, metavar="true|false", help="fail_if_no_peer_cert"
    )
    logs = options.add_argument_group("logging")
    logs.add_argument("--log_level", choices=list(LEVELS), help="log.level")
    logs.add_argument("--log_file", metavar="FILE", help="also log to this file (log.dir, log.file)")
    logs.add_argument(
        "--log_stdout", nargs="?", const=True, type=_flag_bool, metavar="true|false", help="log to stderr"
    )
    logs.add_argument(
        "--log_syslog", nargs="?", const=True, type=_flag_bool, metavar="true|false", help="log to syslog"
    )

    start = commands.add_parser(
        "start", parents=[options], help="start the broker", description="Start the broker."
    )
    start.set_defaults(command="start")
    stop = commands.add_parser("stop", help="stop the running broker", description="Stop the running broker.")
    stop.set_defaults(command="stop")
    restart = commands.add_parser(
        "restart",
        parents=[options],
        help="stop, then start with these arguments",
        description="Restart the broker.",
    )
    restart.set_defaults(command="restart")
    reload = commands.add_parser(
        "reload",
        help="make the running broker re-read its configuration",
        description="Make the running broker re-read the configuration it was started with (SIGHUP). "
        "log and auth (passwords, ACL, http_auth) apply at once; listeners, mqtt and webhook "
        "changes apply on restart. A bad file changes nothing; the broker's log says what happened.",
    )
    reload.set_defaults(command="reload")
    return parser


_FLAG_KEYS = (  # (attribute, flag, config key)
    ("daemon", "--daemon", "system.daemon"),
    ("property_size", "--property_size", "mqtt.property_size"),
    ("msq_len", "--msq_len", "mqtt.max_mqueue_len"),
    ("qos_duration", "--qos_duration", "mqtt.retry_interval"),
    ("cacert", "--cacert", "listeners.ssl.cacertfile"),
    ("cert", "--cert", "listeners.ssl.certfile"),
    ("key", "--key", "listeners.ssl.keyfile"),
    ("keypass", "--keypass", "listeners.ssl.key_password"),
    ("verify", "--verify", "listeners.ssl.verify_peer"),
    ("fail", "--fail", "listeners.ssl.fail_if_no_peer_cert"),
    ("log_level", "--log_level", "log.level"),
)


def _overrides(args):
    """Flags -> (label, key, value) triples for `load_settings`, in the order they apply."""
    overrides = []
    if args.url:
        overrides.append(("--url", "url", args.url))
    for attribute, flag, key in _FLAG_KEYS:
        value = getattr(args, attribute)
        if value is not None:
            overrides.append((flag, key, value))
    if args.log_file:
        overrides.append(("--log_file", "log.dir", os.path.dirname(os.path.abspath(args.log_file))))
        overrides.append(("--log_file", "log.file", os.path.basename(args.log_file)))
        overrides.append(("--log_file", "log.to+", "file"))
    for attribute, target in (("log_stdout", "console"), ("log_syslog", "syslog")):
        value = getattr(args, attribute)
        if value is not None:
            overrides.append((f"--{attribute}", "log.to+" if value else "log.to-", target))
    return overrides


# --------------------------------------------------------------------------- pid file


def _pid_file():
    return os.path.abspath(os.environ.get("NANOMQ_PID_FILE") or DEFAULT_PID_FILE)


def _alive(pid):
    """True while the process exists and is not a zombie waiting for its parent."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fd:
            return fd.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _running_pid(pid_file):
    """The pid of a live instance owning `pid_file`; a stale or garbled file is removed."""
    try:
        with open(pid_file, encoding="ascii", errors="replace") as fd:
            text = fd.read().strip()
    except FileNotFoundError:
        return None
    pid = int(text) if text.isdigit() else 0
    if pid > 0 and pid != os.getpid() and _alive(pid):
        return pid
    _remove_pid_file(pid_file, None)
    return None


def _write_pid_file(pid_file):
    os.makedirs(os.path.dirname(pid_file), exist_ok=True)
    temporary = f"{pid_file}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="ascii") as fd:
        fd.write(f"{os.getpid()}\n")
    os.replace(temporary, pid_file)


def _remove_pid_file(pid_file, owner):
    """Remove the pid file; with `owner`, only if it still names that pid."""
    try:
        if owner is not None:
            with open(pid_file, encoding="ascii", errors="replace") as fd:
                if fd.read().strip() != str(owner):
                    return
        os.unlink(pid_file)
    except OSError:
        pass


# --------------------------------------------------------------------------- commands


def _load_settings(args):
    """(settings, warnings, error) from a forked child that parses the configuration.

    The HOCON parser and the validators (pyhocon, pyparsing, ...) cost about
    17 MB of RSS; parsed in a child, they never load into the broker's process,
    which keeps an idle broker near half that size. A ConfigError comes back as
    its one-line message.
    """
    ok, result = _in_child(_read_settings, args)
    if not ok:
        if result is None:
            return None, [], "NanoMQ could not read its configuration: the loader process died"
        return None, [], "NanoMQ could not read its configuration:\n" + result
    data, warnings, error = result
    return (None if data is None else from_data(data)), warnings, error


def _read_settings(args):
    """Runs in the configuration child: (settings as `to_data`, warnings, None) or (None, [], message)."""
    from nanomq_py.config import ConfigError, load_settings

    try:
        settings, warnings = load_settings(args.conf, args.old_conf, os.environ, _overrides(args))
    except ConfigError as exc:
        return None, [], str(exc)
    return to_data(settings), warnings, None


def _start_command(args):
    for attribute in ("conf", "old_conf"):  # a reload re-reads them, whatever the cwd is then
        if getattr(args, attribute):
            setattr(args, attribute, os.path.abspath(getattr(args, attribute)))
    settings, warnings, error = _load_settings(args)
    if error is not None:
        print(error, file=sys.stderr)
        return 2
    settings.pid_file = os.path.abspath(settings.pid_file)
    running = _running_pid(settings.pid_file)
    if running is not None:
        print(f"NanoMQ is already running (pid {running})", file=sys.stderr)
        return 1
    try:
        setup_logging(settings.log)
    except OSError as exc:
        print(f"NanoMQ cannot open its log file: {exc}", file=sys.stderr)
        return 1
    for warning in warnings:
        log.warning("%s", warning)
        if not console_shows(settings.log, logging.WARNING):
            print(f"warning: {warning}", file=sys.stderr)
    if args.tq_thread or args.max_tq_thread or args.parallel:
        log.warning("--tq_thread, --max_tq_thread and --parallel are ignored: gevent runs on one thread")
    if settings.daemon:
        return _start_daemon(settings, args)
    return _serve(settings, _Console(), args)


def _stop_command(args):
    pid_file = _pid_file()
    pid = _running_pid(pid_file)
    if pid is None:
        print(NOT_RUNNING, file=sys.stderr)
        return 1
    return 0 if _stop_pid(pid, pid_file) else 1


def _restart_command(args):
    pid_file = _pid_file()
    pid = _running_pid(pid_file)
    if pid is not None and not _stop_pid(pid, pid_file):
        return 1
    return _start_command(args)


def _reload_command(args):
    pid = _running_pid(_pid_file())
    if pid is None:
        print(NOT_RUNNING, file=sys.stderr)
        return 1
    os.kill(pid, signal.SIGHUP)
    print(f"NanoMQ (pid {pid}) is reloading its configuration; its log says what was applied")
    return 0


_COMMANDS = {
    "start": _start_command,
    "stop": _stop_command,
    "restart": _restart_command,
    "reload": _reload_command,
}


def _stop_pid(pid, pid_file):
    """SIGTERM `pid` and wait (bounded) until it is gone; True when it is."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError:
        print(f"NanoMQ (pid {pid}) belongs to another user: not allowed to stop it", file=sys.stderr)
        return False
    deadline = time.monotonic() + STOP_TIMEOUT
    while _alive(pid):
        if time.monotonic() > deadline:
            print(f"NanoMQ (pid {pid}) did not stop within {STOP_TIMEOUT:g} s", file=sys.stderr)
            return False
        time.sleep(0.05)
    _remove_pid_file(pid_file, pid)
    print(f"NanoMQ is stopped (pid {pid}).", flush=True)
    return True


# --------------------------------------------------------------------------- running the server


class _Console:
    """Start-up report of a foreground broker: straight to stdout/stderr."""

    def say(self, text):
        print(text, flush=True)

    def fail(self, text):
        print(text, file=sys.stderr, flush=True)

    def close(self):
        pass


class _ParentPipe:
    """Start-up report of a daemon, sent to the waiting parent, which prints it."""

    def __init__(self, fd):
        self.stream = os.fdopen(fd, "w", encoding="utf-8")

    def say(self, text):
        self._send("out", text)

    def fail(self, text):
        self._send("err", text)

    def _send(self, kind, text):
        if not self.stream.closed:
            self.stream.write(f"{kind} {text}\n")
            self.stream.flush()

    def close(self):
        self.stream.close()


def _start_daemon(settings, args):
    """Double fork; the original process returns once the daemon reports it started (or failed)."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child > 0:
        os.close(write_fd)
        os.waitpid(child, 0)
        return _relay_daemon_report(read_fd)
    os.close(read_fd)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    return _serve(settings, _ParentPipe(write_fd), args)


def _relay_daemon_report(read_fd):
    started = explained = False
    with os.fdopen(read_fd, encoding="utf-8") as stream:
        for line in stream:
            kind, _, text = line.rstrip("\n").partition(" ")
            print(text, file=sys.stderr if kind == "err" else sys.stdout, flush=True)
            started = started or text == STARTED
            explained = explained or kind == "err"
    if not started and not explained:
        print("NanoMQ failed to start (see the log)", file=sys.stderr)
    return 0 if started else 1


FULL_COLLECTION_EVERY = 1000  # gen-1 collections (CPython's default: 10)


def _space_full_collections():
    """A full garbage collection stops the loop for as long as it takes to scan every
    object, and the broker's long-lived objects are mostly queued messages (up to 85 ms
    with a few hundred thousand queued, on a fast core). With CPython's default
    thresholds one starts each time a quarter of that heap is newly promoted, which a
    sustained QoS 1 load into a long queue does about every second: every other client
    waits. Queued messages hold no reference cycles (reference counting frees them), and
    young cycles are still collected by the frequent generation 0/1 collections, so full
    ones can be a hundred times rarer."""
    import gc

    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


def _serve(settings, report, args):
    """Start the server, announce it, serve until SIGTERM/SIGINT (SIGHUP: reload
    the configuration from `args`' files); the exit code."""
    import gevent  # only now: after any fork

    from nanomq_py.server import Server

    _space_full_collections()
    try:
        server = Server(settings)
        server.start()
    except OSError as exc:  # a port in use, an unreadable certificate ...
        report.fail(f"NanoMQ failed to start: {exc}")
        report.close()
        return 1
    except Exception as exc:
        log.exception("NanoMQ failed to start")
        report.fail(f"NanoMQ failed to start: {type(exc).__name__}: {exc}")
        report.close()
        return 1
    try:
        _write_pid_file(settings.pid_file)
    except OSError as exc:
        report.fail(f"NanoMQ cannot write its pid file {settings.pid_file}: {exc.strerror or exc}")
        report.close()
        server.stop()
        return 1
    try:
        stopping = []

        def stop(name):
            if stopping:
                log.info("%s: already stopping", name)
                return
            stopping.append(name)
            log.info("%s: stopping", name)
            server.stop()

        # Handlers first: whoever reads the started line may signal at once.
        handlers = [gevent.signal_handler(signal.SIGTERM, stop, "SIGTERM")]
        handlers.append(gevent.signal_handler(signal.SIGINT, stop, "SIGINT"))
        handlers.append(gevent.signal_handler(signal.SIGHUP, gevent.spawn, _reload, server, args))
        for kind, host, port in server.addresses:
            report.say(f"NanoMQ listening on {kind}://{_host_text(host)}:{port}")
        if server.http_api is not None:
            host, port = server.http_api.address
            report.say(f"NanoMQ HTTP API listening on http://{_host_text(host)}:{port}")
        report.say(STARTED)
        report.close()
        log.info("NanoMQ started (pid %d, config %s)", os.getpid(), settings.source)
        server.serve_forever()
        for handler in handlers:
            handler.cancel()
        log.info("NanoMQ stopped")
        return 0
    except Exception:
        log.exception("NanoMQ stopped on an unexpected error")
        return 1
    finally:
        _remove_pid_file(settings.pid_file, os.getpid())


def _reload(server, args):
    """SIGHUP: re-read the configuration in a child and apply what can change live."""
    log.info("SIGHUP: reloading the configuration")
    settings, warnings, error = _load_settings(args)
    if error is not None:
        log.error("reload refused, the running configuration is kept: %s", error)
        return
    for warning in warnings:
        log.warning("%s", warning)
    try:
        pending = server.reload(settings)
    except OSError as exc:
        log.error("reload refused, the running configuration is kept: cannot open the log file: %s", exc)
        return
    log.info("configuration reloaded from %s: log and auth applied", settings.source)
    if pending:
        log.warning("reload: %s changed; that applies on restart (nanomq restart)", ", ".join(pending))


def _host_text(host):
    return f"[{host}]" if ":" in host else host
