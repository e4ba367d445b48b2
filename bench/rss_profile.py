"""Where the idle broker's memory goes: VmRSS after each layer of imports, each
layer on top of the ones before, in the venv the bench installs nanomq_py into.

    python3 bench/rss_profile.py

Each row is a fresh interpreter that imports its layer and everything above it
and prints its own VmRSS, so a row's increment is what that layer adds. The
idle broker (`bench/run.py --scenarios idle`) holds a little more than the
last matching row: its listener, hub watchers and buffers (a process that
starts gevent's hub without importing nanomq_py.server first also loads pprint,
which the broker avoids).
"""

from __future__ import annotations

import subprocess
import sys

import toolchain

LAYERS = [
    ("interpreter (python -c pass)", "pass"),
    ("gevent and gevent.socket", "import gevent, gevent.socket"),
    ("stdlib the broker uses (logging, socket, struct)", "import logging, socket, struct"),
    ("nanomq_py broker (cli, server, broker, transport)", "import nanomq_py.cli, nanomq_py.server"),
    ("webhook: ssl (imported by urllib3 even for http://)", "import ssl"),
    ("webhook: http.client (urllib3's base classes)", "import http.client"),
    ("webhook: urllib3 (with importlib.metadata via urllib3.http2)", "import urllib3, urllib3.connection"),
    ("webhook: nanomq_py.webhook", "import nanomq_py.webhook"),
]

_PRINT_RSS = "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS:')))"


def main() -> int:
    python = str(toolchain.ensure_nanomq_py().parent / "python")
    # Once unmeasured: a module imported for the first time after the install may
    # still be compiled to bytecode, which costs the compiler's memory.
    # From "/", so that `-c` does not put a checkout on sys.path ahead of the installed package.
    subprocess.check_call([python, "-c", "; ".join(statement for _, statement in LAYERS)], cwd="/")
    code = []
    previous = 0
    print("| layer | VmRSS kB | added kB |\n|---|---|---|")
    for label, statement in LAYERS:
        code.append(statement)
        rss = int(subprocess.check_output([python, "-c", "; ".join([*code, _PRINT_RSS])], text=True, cwd="/"))
        print(f"| {label} | {rss:,} | {rss - previous:+,} |")
        previous = rss
    return 0


if __name__ == "__main__":
    sys.exit(main())
