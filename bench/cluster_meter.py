"""CPU of a local cluster's own processes, beside the whole machine's busy time, sampled every second."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from cluster_report import Sample
from ingest_measure import _system_busy_s
from train_sampler import _stat

METER_PERIOD_S = 1.0
TICKS = os.sysconf("SC_CLK_TCK")


class CpuMeter(threading.Thread):
    """Every METER_PERIOD_S while in use: the machine's busy CPU s and the CPU s of the cluster's own processes.

    A process is the cluster's when it carries a node's CLIPLINE_CLUSTER_NODE mark in its environment (every
    process local-cluster.sh starts for a node, and the Ray workers those start), is in the session of a clipline
    command (add_session), or is a fixed process (the S3 server, nginx) or a child of one. A process the meter first
    sees after it started counts from 0; one that exits keeps what it was last seen with."""

    def __init__(self, cluster_name: str, fixed: dict[int, str]):
        super().__init__(daemon=True)
        self.mark = f"CLIPLINE_CLUSTER_NODE={cluster_name}/".encode()
        self.fixed = fixed  # pid -> part
        self.sessions: dict[int, str] = {}  # session id -> part
        self.part_of: dict[tuple[int, int], str | None] = {}  # (pid, start tick) -> part, None: not the cluster's
        self.base: dict[tuple[int, int], float] = {}  # CPU s when first seen (0 for processes started since)
        self.last: dict[tuple[int, int], float] = {}
        self.samples: list[Sample] = []
        self.own_cpu_s = 0.0
        self._lock, self._stopped = threading.Lock(), threading.Event()
        self._started_tick = time.clock_gettime(time.CLOCK_BOOTTIME) * TICKS
        self._busy_before = _system_busy_s()

    def __enter__(self) -> CpuMeter:
        self.sample()
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopped.set()
        self.join()
        self.sample()

    def add_session(self, sid: int, part: str) -> None:
        with self._lock:  # the command's first processes may have been judged another's already: judge them again
            self.sessions[sid] = part
            self.part_of = {key: p for key, p in self.part_of.items() if p is not None}

    def run(self) -> None:
        start = time.thread_time()
        while not self._stopped.wait(METER_PERIOD_S):
            self.sample()
            self.own_cpu_s = time.thread_time() - start

    def sample(self) -> None:
        with self._lock:
            for entry in os.scandir("/proc"):
                if entry.name.isdigit() and (fields := _stat(int(entry.name))):
                    self._update(int(entry.name), fields)
            own = sum(self.last[key] - self.base[key] for key in self.last)
        self.samples.append(Sample(time.time(), _system_busy_s() - self._busy_before, own))

    def _update(self, pid: int, fields: list[str]) -> None:
        key, cpu = (pid, int(fields[19])), (int(fields[11]) + int(fields[12])) / TICKS
        if key not in self.part_of:
            self.part_of[key] = self._part(pid, int(fields[1]), int(fields[3]))
            self.base[key] = cpu if key[1] < self._started_tick else 0.0
        if self.part_of[key]:
            self.last[key] = cpu

    def _part(self, pid: int, ppid: int, sid: int) -> str | None:
        if part := self.fixed.get(pid) or self.fixed.get(ppid) or self.sessions.get(sid):
            return part
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            return None
        return next((f"node {item[len(self.mark):].decode()}" for item in environ if item.startswith(self.mark)),
                    None)

    def totals_by_part(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, cpu in self.last.items():
            part = self.part_of.get(key) or "?"
            out[part] = out.get(part, 0.0) + cpu - self.base[key]
        return out
