"""Boot a temporary Prefect API server while the CLI imports torch and Ray, instead of after.

With no PREFECT_API_URL, a flow call starts Prefect's ephemeral server: it imports the server stack
(FastAPI, SQLAlchemy) into this process, launches it as a uvicorn subprocess and polls it until it
answers, 5 to 15 s on 2 cores, all before the flow's first task. `start_in_background` launches the
same uvicorn command (Prefect's SubprocessASGIServer command line and environment: SQLite database in
PREFECT_HOME, no UI) as soon as a verb's config is valid and before Prefect is imported, and points
PREFECT_API_URL at it, so the server boots on another core while this process imports its stack and
this process never imports the server code. `ready` waits until it answers; the server stops when the
CLI exits, killed with SIGKILL included (PR_SET_PDEATHSIG). With PREFECT_API_URL already set, or
ephemeral mode turned off, both do nothing.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from clipline.pipelines.errors import ClipLineError

STARTUP_TIMEOUT_S = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", 120))
STOP_TIMEOUT_S = 5
PR_SET_PDEATHSIG = 1  # linux/prctl.h: the signal a process gets when its parent dies
_server: subprocess.Popen | None = None
_url: str | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wanted() -> bool:
    ephemeral = os.environ.get("PREFECT_SERVER_EPHEMERAL_ENABLED", "true").lower() not in ("0", "false", "no")
    return _server is None and not os.environ.get("PREFECT_API_URL") and ephemeral and "prefect" not in sys.modules


def start_in_background() -> None:
    """Launch the server subprocess and set PREFECT_API_URL for this process (Prefect not imported yet)."""
    global _server, _url
    if not _wanted():
        return
    port = _free_port()
    prefect_dir = Path(importlib.util.find_spec("prefect").origin).parent
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # offline, its telemetry call logs an ERROR
    _server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(prefect_dir.parent), "--factory",
         "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port), "--log-level",
         "error", "--lifespan", "on"], env=env, stdin=subprocess.DEVNULL, preexec_fn=_dies_with(os.getpid()))
    atexit.register(_stop)
    _url = f"http://127.0.0.1:{port}/api"
    os.environ["PREFECT_API_URL"] = _url


def _dies_with(parent_pid: int):
    """A preexec_fn that makes the child get SIGTERM when this process dies, even by SIGKILL (atexit then
    never runs). Linux only (prctl); elsewhere the server can outlive a killed CLI."""
    def set_parent_death_signal() -> None:
        if not sys.platform.startswith("linux"):
            return
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)
    return set_parent_death_signal


def ready() -> None:
    """Wait until the server launched by start_in_background answers."""
    if _server is None:
        return
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if _server.poll() is not None:
            raise ClipLineError(f"the temporary Prefect server exited with status {_server.returncode}",
                                "set PREFECT_API_URL to a running Prefect server (`prefect server start`)")
        try:
            with urllib.request.urlopen(f"{_url}/health", timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise ClipLineError(f"the temporary Prefect server did not answer within {STARTUP_TIMEOUT_S:.0f} s",
                        "raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS or start `prefect server start`")


def _stop() -> None:
    global _server
    if _server is None:
        return
    _server.terminate()
    try:
        _server.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _server.kill()
        _server.wait()
    _server = None
