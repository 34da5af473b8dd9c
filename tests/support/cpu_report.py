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
import threading
import time
from dataclasses import dataclass

TICKS = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, start time, CPU ticks of the process itself)."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
            except (OSError, IndexError):
                continue
            found[int(entry)] = (int(fields[1]), int(fields[19]), int(fields[11]) + int(fields[12]))  # utime+stime
    return found


def machine_busy_s() -> float:
    """The machine's busy CPU seconds since boot: every /proc/stat column but idle and iowait."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICKS


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
        self._latest: dict[tuple[int, int], int] = {}  # (pid, start time) -> its CPU ticks when last read
        self._lock = threading.Lock()
        self._period_s = period_s
        self._thread: threading.Thread | None = None

    def read(self) -> float:
        """Read the tree now; the CPU seconds of every process of it ever read, each at its latest reading."""
        processes = _processes()
        children: dict[int, list[int]] = {}
        for pid, (parent, _, _) in processes.items():
            children.setdefault(parent, []).append(pid)
        stack, now = [self.root], {}
        while stack:
            pid = stack.pop()
            if pid in processes:
                _, started, ticks = processes[pid]
                now[(pid, started)] = ticks
            stack += children.get(pid, [])
        with self._lock:
            self._latest.update(now)
            return sum(self._latest.values()) / TICKS

    def _poll(self) -> None:
        while True:
            time.sleep(self._period_s)
            self.read()

    def start(self) -> tuple[float, float, float]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._poll, name="cpu-report", daemon=True)
            self._thread.start()
        return time.monotonic(), self.read(), machine_busy_s()

    def stop(self, test: str, started: tuple[float, float, float]) -> None:
        wall, tree, machine = started
        self.costs.append(Cost(test, time.monotonic() - wall, self.read() - tree, machine_busy_s() - machine))

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
