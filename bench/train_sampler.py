"""bench-train's view of a running tool: the machine's load, and the CPU of every process and thread of the tool
(descendants by parent pid), read from /proc."""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("bench.train")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def add_load_options(parser: argparse.ArgumentParser, load_wait: float, timeout_of: str) -> None:
    """--max-load and --load-wait (see wait_for_load), --timeout of `timeout_of`, and --out, as every bench that
    waits for a quiet machine takes them."""
    parser.add_argument("--max-load", type=float, default=1.0, help="wait for the 1-minute load to drop below this")
    parser.add_argument("--load-wait", type=float, default=load_wait, help="seconds to wait for it at most, per run")
    parser.add_argument("--timeout", type=float, default=1800, help=f"seconds allowed per {timeout_of}")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"), help="the page to update")


def wait_for_load(max_load: float, max_wait: float, poll: float = 30.0) -> float:
    """Wait (up to max_wait s) for the 1-minute load average to drop below max_load; return it."""
    deadline = time.monotonic() + max_wait
    load = load1()
    while load >= max_load and time.monotonic() < deadline:
        log.info("1-minute load %.2f >= %.2f: waiting (up to %.0f s more)", load, max_load,
                 deadline - time.monotonic())
        time.sleep(min(poll, max(1.0, deadline - time.monotonic())))
        load = load1()
    if load >= max_load:
        log.warning("1-minute load still %.2f after %.0f s: running anyway (noted in the report)", load, max_wait)
    return load


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()  # [state, ppid, ..., utime (11), stime (12), ...]


def _cmdline(pid: int) -> list[str]:
    try:
        return [a for a in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0") if a]
    except OSError:
        return []


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))):
            children[int(fields[1])].append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _name(cmd: list[str]) -> str:
    if not cmd:
        return "?"
    if cmd[0].startswith("ray::"):
        return cmd[0].split()[0].split(".")[0]
    if "python" in Path(cmd[0]).name:
        rest = cmd[1:]
        while rest and rest[0].startswith("-") and rest[0] != "-m":
            rest = rest[1:]  # interpreter flags such as -u
        if rest[:1] == ["-m"] and len(rest) > 1:
            return rest[1]
        if rest:
            return Path(rest[0]).name
    return Path(cmd[0]).name


@dataclass
class ProcInfo:
    name: str
    cpu_s: float = 0.0
    threads: dict[str, float] = field(default_factory=dict)  # "comm/tid" -> CPU s


class TreeSampler:
    """CPU seconds of every process of a tool (descendants by parent pid) and of each thread, from /proc."""

    def __init__(self, root: int):
        self.root = root
        self.procs: dict[int, ProcInfo] = {}
        self.series: list[tuple[float, float]] = []  # (epoch seconds, CPU s of the whole tree so far)

    def sample(self) -> None:
        pids = _descendants(self.root)
        for pid in pids:
            fields = _stat(pid)
            if fields is None:
                continue
            # Named afresh each time: a Ray worker starts as setup_worker.py and renames itself ray::Actor.
            cmd = _cmdline(pid)
            name = "main" if pid == self.root else _name(cmd)
            parent = self.procs.get(int(fields[1]))
            if parent and cmd and cmd == _cmdline(int(fields[1])):
                name = f"{parent.name} (forked child)"  # e.g. a DataLoader worker
            info = self.procs.setdefault(pid, ProcInfo(name))
            if cmd:
                info.name = name
            info.cpu_s = (int(fields[11]) + int(fields[12])) / CLK_TCK
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
                    comm = text[text.index("(") + 1:text.rindex(")")]
                    t = text.rsplit(")", 1)[1].split()
                    info.threads[f"{comm}/{tid}"] = (int(t[11]) + int(t[12])) / CLK_TCK
            except (OSError, ValueError):
                pass
        self.series.append((time.time(), sum(p.cpu_s for p in self.procs.values())))

    def cpu_by_name(self) -> dict[str, float]:
        totals: dict[str, float] = defaultdict(float)
        for info in self.procs.values():
            totals[info.name] += info.cpu_s
        return dict(sorted(totals.items(), key=lambda kv: -kv[1]))

    def trainer(self) -> ProcInfo | None:
        """The process that ran the training steps: the busiest one that is not a forked DataLoader worker."""
        candidates = [p for p in self.procs.values() if "forked child" not in p.name]
        return max(candidates, key=lambda p: p.cpu_s, default=None)
