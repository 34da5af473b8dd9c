"""CPU seconds per test, for keeping the suite within its time on 2 cores (CLIPLINE_TEST_CPU_REPORT=FILE).

`make test` runs two pytest sessions that keep both cores busy, so a test's wall time (pytest's --durations) says
how long it waited as much as what it cost. This counts what it cost: the CPU of the session's process tree over
the test (setup to teardown: the pytest process, its subprocesses and the local Ray's processes it started, live
ones plus the children they reaped), and the whole machine's busy CPU beside it. Processes outside the tree (a
cluster's Ray nodes, started by `ray start`, which detaches) count only in the machine column. A process that ends
without a process of the tree reaping it takes its CPU out of the count: a test whose fixture teardown stops such
processes can even show a negative figure. So the column ranks tests; it does not add up to the session's CPU.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

TICKS = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, CPU ticks of the process and of the children it reaped)."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
            except (OSError, IndexError):
                continue
            found[int(entry)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))  # utime stime cutime cstime
    return found


def tree_cpu_s(root: int) -> float:
    """CPU seconds of `root` and every process below it."""
    processes = _processes()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    ticks, stack = 0, [root]
    while stack:
        pid = stack.pop()
        ticks += processes.get(pid, (0, 0))[1]
        stack += children.get(pid, [])
    return ticks / TICKS


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

    def __init__(self) -> None:
        self.root = os.getpid()
        self.costs: list[Cost] = []

    def start(self) -> tuple[float, float, float]:
        return time.monotonic(), tree_cpu_s(self.root), machine_busy_s()

    def stop(self, test: str, started: tuple[float, float, float]) -> None:
        wall, tree, machine = started
        self.costs.append(Cost(test, time.monotonic() - wall, tree_cpu_s(self.root) - tree,
                                   machine_busy_s() - machine))

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
