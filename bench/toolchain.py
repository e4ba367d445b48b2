"""Installs and builds what the bench needs, so one command works on a fresh machine.

Mosquitto comes from Debian (apt-get), amqtt from PyPI into its own venv under
bench/.work/, nanomq_py from this checkout into another venv there (reinstalled
at every run, the way a user installs it), and the C helpers (load generator, forwarder, HTTP sink) are
compiled with gcc into bench/.work/ whenever their source is newer.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
WORK_DIR = BENCH_DIR / ".work"
AMQTT_VERSION = "0.12.1"  # the version the reference figures were taken with
AMQTT_VENV = WORK_DIR / "amqtt-venv"
NANOMQ_VENV = WORK_DIR / "nanomq-venv"
REPO_ROOT = BENCH_DIR.parent
# Not part of the package's source: left out of the copy that pip builds.
_NOT_SOURCE = {"bench", "tests", "build", "dist", "node_modules"}  # at the top of the checkout
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


def _make_venv(path: Path) -> None:
    """python -m venv; Debian's own python3 needs its python3-venv package for that."""
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "venv", str(path)]
    if subprocess.run(argv, capture_output=True).returncode != 0:
        shutil.rmtree(path, ignore_errors=True)
        _apt_install(f"python3.{sys.version_info.minor}-venv")
        _run_quietly(argv)


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
    _make_venv(AMQTT_VENV)
    _run_quietly([str(python), "-m", "pip", "install", "-q", f"amqtt=={AMQTT_VERSION}"])
    return script


def ensure_nanomq_py() -> Path:
    """Path of the `nanomq` script in bench/.work/nanomq-venv, with this checkout just installed.

    Measured the way a user runs it (`pip install . && nanomq start`): a venv of its
    own keeps the checkout's PYTHONPATH and the system site-packages' .pth files
    (which import modules into every Python process) out of the figures. The package
    is reinstalled at every run (its dependencies only when missing), from a copy of
    the checkout so pip's build/ directory can never carry a deleted module along.
    """
    python = NANOMQ_VENV / "bin" / "python"
    fresh = not python.exists()
    if fresh:
        print(f"[setup] creating {NANOMQ_VENV}", file=sys.stderr)
        _make_venv(NANOMQ_VENV)
    print(f"[setup] pip install {REPO_ROOT} into {NANOMQ_VENV}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="nanomq-src-") as tmp:
        source = Path(tmp) / "nanomq_py"
        shutil.copytree(REPO_ROOT, source, ignore=_skip_not_source)
        pip = [str(python), "-m", "pip", "install", "-q"]
        _run_quietly([*pip, str(source)] if fresh else [*pip, "--no-deps", "--force-reinstall", str(source)])
        if subprocess.run([str(python), "-m", "pip", "check"], capture_output=True).returncode != 0:
            _run_quietly([*pip, str(source)])  # a dependency is missing: install what setup.py asks for
    return NANOMQ_VENV / "bin" / "nanomq"


def _skip_not_source(directory: str, names: list[str]) -> list[str]:
    top = Path(directory) == REPO_ROOT
    return [
        n
        for n in names
        if n == "__pycache__" or (top and (n in _NOT_SOURCE or n.startswith(".") or n.endswith(".egg-info")))
    ]


def ensure_py_spy() -> Path:
    """py-spy (PyPI) in bench/.work/pyspy-venv, for `run.py --py-spy`."""
    venv = WORK_DIR / "pyspy-venv"
    binary = venv / "bin" / "py-spy"
    if not binary.exists():
        print(f"[setup] installing py-spy=={PY_SPY_VERSION} into {venv}", file=sys.stderr)
        _make_venv(venv)
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
