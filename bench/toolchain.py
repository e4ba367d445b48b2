"""Installs and builds what the bench needs, so one command works on a fresh machine.

Mosquitto comes from Debian (apt-get), amqtt from PyPI into its own venv under
bench/.work/, and the C helpers (load generator, forwarder, HTTP sink) are
compiled with gcc into bench/.work/ whenever their source is newer.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR / ".work"
AMQTT_VERSION = "0.12.1"  # the version the reference figures were taken with
AMQTT_VENV = WORK_DIR / "amqtt-venv"
PY_SPY_VERSION = "0.4.3"
C_HELPERS = {
    "loadgen": BENCH_DIR / "loadgen.c",
    "forwarder": BENCH_DIR / "echo" / "forwarder.c",
    "httpsink": BENCH_DIR / "httpsink.c",
}
_apt_updated = False


def _run_quietly(argv: list[str]) -> None:
    """Runs an install step; its chatter is shown only when it fails."""
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"[setup] failed: {' '.join(argv)}")


def _apt_install(*packages: str) -> None:
    global _apt_updated
    print(f"[setup] apt-get install -y {' '.join(packages)}", file=sys.stderr)
    if not _apt_updated:
        subprocess.run(["apt-get", "update", "-q"], capture_output=True)
        _apt_updated = True
    _run_quietly(["apt-get", "install", "-y", "-q", *packages])


def ensure_mosquitto() -> str:
    """Path of the mosquitto binary, installing the Debian package when missing."""
    found = shutil.which("mosquitto") or (Path("/usr/sbin/mosquitto").exists() and "/usr/sbin/mosquitto")
    if not found:
        _apt_install("mosquitto")
        found = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    return str(found)


def ensure_amqtt() -> Path:
    """Path of the `amqtt` broker script in bench/.work/amqtt-venv, installing the pinned version."""
    script = AMQTT_VENV / "bin" / "amqtt"
    python = AMQTT_VENV / "bin" / "python"
    if script.exists():
        probe = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('amqtt'))"],
            capture_output=True,
            text=True,
        )
        if probe.stdout.strip() == AMQTT_VERSION:
            return script
    print(f"[setup] installing amqtt=={AMQTT_VERSION} into {AMQTT_VENV}", file=sys.stderr)
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    _run_quietly([sys.executable, "-m", "venv", str(AMQTT_VENV)])
    _run_quietly([str(python), "-m", "pip", "install", "-q", f"amqtt=={AMQTT_VERSION}"])
    return script


def ensure_py_spy() -> Path:
    """py-spy (PyPI) in bench/.work/pyspy-venv, for `run.py --py-spy`."""
    venv = WORK_DIR / "pyspy-venv"
    binary = venv / "bin" / "py-spy"
    if not binary.exists():
        print(f"[setup] installing py-spy=={PY_SPY_VERSION} into {venv}", file=sys.stderr)
        _run_quietly([sys.executable, "-m", "venv", str(venv)])
        _run_quietly(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"py-spy=={PY_SPY_VERSION}"]
        )
    return binary


def ensure_taskset() -> None:
    if not shutil.which("taskset"):
        _apt_install("util-linux")


def build_helpers() -> dict[str, Path]:
    """Compiles each C helper into bench/.work/ when missing or older than its source."""
    if not shutil.which("gcc"):
        _apt_install("gcc", "libc6-dev")
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    built = {}
    for name, source in C_HELPERS.items():
        binary = WORK_DIR / name
        if not binary.exists() or binary.stat().st_mtime < source.stat().st_mtime:
            print(f"[setup] gcc -O2 {source.relative_to(BENCH_DIR)} -> .work/{name}", file=sys.stderr)
            subprocess.run(["gcc", "-O2", "-Wall", "-o", str(binary), str(source)], check=True)
        built[name] = binary
    return built
