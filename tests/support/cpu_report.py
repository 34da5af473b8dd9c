"""CPU seconds per test, for keeping the suite within its time on 2 cores (CLIPLINE_TEST_CPU_REPORT=FILE).

`make test` runs two pytest sessions that keep both cores busy, so a test's wall time (pytest's --durations) says
how long it waited as much as what it cost. This counts what it cost: the CPU of the session's process tree over
the test (setup to teardown: the pytest process, its subprocesses, and the local Ray's raylet and workers, which
it started), and the whole machine's busy CPU beside it. Processes outside the tree (a cluster's Ray nodes,
started by `ray start`, which detaches) count only in the machine column.

A thread reads every process of the tree once a second and keeps each one's latest CPU after it ends: Ray's raylet
ignores SIGCHLD, so a Ray worker's CPU never reaches its parent's reaped-children count. What escapes is a
process's last second, and processes that live less than a second.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))  # the benches' /proc readers (stdlib only)
from ingest_measure import TICKS, _Proc, _system_busy_s, descendants  # noqa: E402
from train_sampler import _stat  # noqa: E402


@dataclass
class Cost:
    test: str
    wall_s: float
    tree_cpu_s: float
    machine_cpu_s: float


class Meter:
    """Start it before a test and stop it after; `costs` collects one Cost per test."""

    def __init__(self, root: int | None = None, period_s: float = 1.0) -> None:
        self.root = root or os.getpid()
        self.costs: list[Cost] = []
        self._latest: dict[tuple[int, int], float] = {}  # (pid, start tick) -> its CPU s when last read
        self._lock = threading.Lock()
        self._period_s = period_s
        self._thread: threading.Thread | None = None

    def read(self) -> float:
        """Read the tree now; the CPU seconds of every process of it ever read, each at its latest reading."""
        stats = {int(e.name): f for e in os.scandir("/proc") if e.name.isdigit() and (f := _stat(int(e.name)))}
        procs = {pid: _Proc(int(f[1]), (int(f[11]) + int(f[12])) / TICKS, 0) for pid, f in stats.items()}
        now = {(pid, int(stats[pid][19])): procs[pid].cpu_s for pid in descendants(self.root, procs)}
        with self._lock:
            self._latest.update(now)
            return sum(self._latest.values())

    def _poll(self) -> None:
        while True:
            time.sleep(self._period_s)
            self.read()

    def start(self) -> tuple[float, float, float]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._poll, name="cpu-report", daemon=True)
            self._thread.start()
        return time.monotonic(), self.read(), _system_busy_s()

    def stop(self, test: str, started: tuple[float, float, float]) -> None:
        wall, tree, machine = started
        self.costs.append(Cost(test, time.monotonic() - wall, self.read() - tree, _system_busy_s() - machine))

    def write(self, path: str) -> None:
        with open(path, "w") as f:
            f.write("test\twall_s\ttree_cpu_s\tmachine_cpu_s\n")
            f.writelines(f"{c.test}\t{c.wall_s:.1f}\t{c.tree_cpu_s:.1f}\t{c.machine_cpu_s:.1f}\n" for c in self.costs)

    def top_lines(self, n: int = 25) -> list[str]:
        total = sum(c.tree_cpu_s for c in self.costs)
        lines = [f"{len(self.costs)} tests, {total:.0f} CPU s in this session's process tree; the {n} costliest:"]
        for c in sorted(self.costs, key=lambda c: -c.tree_cpu_s)[:n]:
            lines.append(f"{c.tree_cpu_s:7.1f} CPU s {c.wall_s:7.1f} s wall {c.machine_cpu_s:7.1f} machine  {c.test}")
        return lines
