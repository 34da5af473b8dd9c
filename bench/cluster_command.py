"""One clipline command on a local cluster, in a session of its own, its output lines kept with their times."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path

from cluster_report import Cluster

REPO = Path(__file__).resolve().parent.parent


class BenchError(RuntimeError):
    """A step failed; main() logs the message and exits non-zero."""


class Command:
    """A clipline command on the cluster, in a session of its own; each output line is kept with the time it came
    (`lines`) and written to `log_path` prefixed with the seconds since the start."""

    def __init__(self, cmd: list[str], cluster: Cluster, log_path: Path, env: dict[str, str] | None = None):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.cmd, self.log_path, self.started = cmd, log_path, time.time()
        self.lines: list[tuple[float, str]] = []
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=os.environ | cluster.env | (env or {}),
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     text=True, errors="replace", start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with self.log_path.open("w") as sink:
            for line in self.proc.stdout:
                at = time.time()
                self.lines.append((at, line.rstrip("\n")))
                sink.write(f"[{at - self.started:8.2f}] {line}")
                sink.flush()

    def wait(self, timeout: float) -> float:
        """Wait for a clean exit; the time it exited."""
        try:
            code = self.proc.wait(timeout)
            ended = time.time()
        except subprocess.TimeoutExpired as e:
            raise BenchError(f"{self.cmd[1]} ran past {timeout:.0f} s (log: {self.log_path})") from e
        finally:
            self.stop()
        if code != 0:
            tail = "\n".join(line for _, line in self.lines[-40:])
            raise BenchError(f"exit status {code} from {shlex.join(self.cmd)} (log: {self.log_path}):\n{tail}")
        return ended

    def stop(self) -> None:
        """End the command and whatever it started in its session (a no-op once it has exited)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._reader.join(timeout=10)

    def first_after(self, t: float, pattern: str) -> float | None:
        """When the first output line after `t` matching `pattern` came."""
        return next((at for at, line in self.lines if at > t and re.search(pattern, line)), None)
