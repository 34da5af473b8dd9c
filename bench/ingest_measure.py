"""Run one ingest command: wall time, peak memory and CPU of its process tree, successes written.

The command's whole process tree is sampled (TreeSampler): the command and every
process below it by parent pid, however started (Ray's gcs_server, raylet, agents and
workers, Prefect's server subprocess, img2dataset's worker processes), so a child in a
session of its own still counts. The primary memory figure is the peak of the tree's
summed PSS (proportional set size, /proc/<pid>/smaps_rollup), which splits each page
shared by n processes (libraries, forked memory, Ray's shared-memory object store) into
n parts: its sum is the memory the tool really holds. Summed RSS, which counts a shared
page once per process, is kept beside it. At the peak of PSS the sample is kept per
process name, to show where the memory goes.

CPU is kept per process and per thread (/proc/<pid>/task/<tid>/stat), with each
thread's time spent waiting for a CPU (schedstat), so it can be split between the
tool's main process, its workers and their threads, and so it shows whether the
tool's threads wanted more CPU than they got; the file server's CPU is measured apart.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import signal
import subprocess
import tarfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("bench.ingest_measure")

SAMPLE_EVERY_S = 0.2
PSS_EVERY = 10  # samples: PSS and process names every 2 s (and on a new process or an RSS high)
RSS_JUMP = 1.02  # ... and when the summed RSS passes its highest so far by this factor
THREADS_AFTER_CPU_S = 0.02  # a process's threads are read again once it has used this much CPU
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")
MAIN_THREAD = "main thread"


@dataclass
class RunResult:
    wall_s: float
    peak_pss_mb: float  # peak of the PSS summed over the process tree
    peak_pss_at_s: float  # when, since the start
    peak_rss_mb: float  # peak of the RSS summed over the process tree (shared pages counted per process)
    pss_by_name: dict[str, tuple[float, int]]  # at the PSS peak: process name -> (PSS MB, processes)
    peak_pss_of_name: dict[str, float]  # process name -> its own peak (PSS MB summed over its processes)
    cpu_s: float  # user + system over the whole process tree
    cpu_by_name: dict[str, float]  # process name -> CPU s
    cpu_by_thread: dict[tuple[str, str], float]  # (process name, thread name) -> CPU s
    busy_threads: dict[tuple[str, str], ThreadGroup]  # (process name, MAIN_THREAD or "other") -> time use
    runnable_s: float  # thread-seconds on a CPU or waiting for one, whole tree: / wall = CPUs it wanted
    server_cpu_s: float  # the file server (nginx), measured apart
    background_cpu_s: float  # busy CPU time of the machine outside the tool, the server and the sampler
    sampler_cpu_s: float  # this harness's own sampling
    loadavg_before: float  # 1-minute load average when the run started
    successes: int
    returncode: int
    log_path: Path


@dataclass
class _Proc:
    ppid: int
    cpu_s: float
    rss: int  # bytes, from stat (smaps_rollup's when read)
    pss: int | None = None  # bytes


def _read(path: str) -> str:
    """A small /proc file (os.read: several times cheaper than Path.read_text, which matters at
    hundreds of reads per sample)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace")


def _read_stat(path: str) -> tuple[str, list[str]]:
    """(comm, fields after comm) of a /proc/.../stat file; comm may hold spaces and parentheses."""
    head, tail = _read(path).rsplit(")", 1)
    return head.split("(", 1)[1], tail.split()


def _all_procs() -> dict[int, _Proc]:
    out = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                _, f = _read_stat(f"{entry.path}/stat")
                # fields after comm: state=0, ppid=1, utime=11, stime=12, rss=21 (pages)
                out[int(entry.name)] = _Proc(int(f[1]), (int(f[11]) + int(f[12])) / TICKS, int(f[21]) * PAGE)
    return out


def descendants(root: int, procs: dict[int, _Proc]) -> list[int]:
    """`root` and every process below it by parent pid (sessions and process groups do not matter)."""
    children: dict[int, list[int]] = defaultdict(list)
    for pid, proc in procs.items():
        children[proc.ppid].append(pid)
    pids, stack = [], [root] if root in procs else []
    while stack:
        pids.append(stack.pop())
        stack.extend(children.get(pids[-1], []))
    return pids


def _smaps_rollup(pid: int) -> tuple[int, int] | None:
    """(PSS, RSS) bytes of one process; (0, 0) once it has exited or is exiting (no memory map
    left); None if the kernel will not tell (another user's process, without privileges)."""
    try:
        text = _read(f"/proc/{pid}/smaps_rollup")
    except (FileNotFoundError, ProcessLookupError):
        return 0, 0
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines()[1:] if ":" in line)
    if "Pss" not in fields or "Rss" not in fields:
        return 0, 0
    return int(fields["Pss"].split()[0]) * 1024, int(fields["Rss"].split()[0]) * 1024


def process_name(pid: int, root: int) -> str:
    """A short, stable name for a process of the tool: what a reader recognises in `ps`."""
    try:
        comm, _ = _read_stat(f"/proc/{pid}/stat")
        argv = [a for a in _read(f"/proc/{pid}/cmdline").split("\0") if a]
    except (OSError, IndexError, ValueError):
        return "?"
    if not argv:  # exiting (or a kernel thread): keep the name it had
        return "?"
    if argv[0].startswith("ray::"):  # a Ray worker: its title is ray::<task or actor>
        return argv[0].split()[0]
    if pid == root:
        return f"{comm} (main process)"
    if comm.startswith("python") and len(argv) > 1:
        args = argv[1:]
        if "-m" in args[:-1]:
            module = args[args.index("-m") + 1]
            if module == "uvicorn" and any("prefect.server" in a for a in args):
                return "prefect server (uvicorn)"
            return f"python -m {module}"
        if "-c" in args[:-1]:
            code = args[args.index("-c") + 1]
            return "python (multiprocessing)" if "multiprocessing" in code else "python -c"
        script = next((a for a in args if a.endswith(".py")), None)
        if script:
            return f"ray {Path(script).name}" if "/ray/" in script else Path(script).name
    return comm


@dataclass
class _Thread:
    name: str  # MAIN_THREAD for the process's main thread, else its comm
    cpu_s: float  # user + system
    wait_s: float  # time spent runnable but waiting for a CPU (schedstat)
    born_s: float  # start, seconds since boot
    seen_s: float  # last seen alive, seconds since boot


def _thread_stats(pid: int) -> dict[int, _Thread]:
    """tid -> _Thread for every live thread of `pid`."""
    out = {}
    now = time.clock_gettime(time.CLOCK_BOOTTIME)
    with contextlib.suppress(OSError):
        for entry in os.scandir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                comm, f = _read_stat(f"{entry.path}/stat")
                wait_ns = int(_read(f"{entry.path}/schedstat").split()[1])
                tid = int(entry.name)
                # fields after comm: utime=11, stime=12, starttime=19 (ticks after boot)
                out[tid] = _Thread(MAIN_THREAD if tid == pid else comm, (int(f[11]) + int(f[12])) / TICKS,
                                   wait_ns / 1e9, int(f[19]) / TICKS, now)
    return out


@dataclass
class ThreadGroup:
    """Threads of one kind in the processes of one name: CPU s, and how their time went."""
    cpu_s: float = 0.0
    wait_s: float = 0.0  # runnable, waiting for a CPU
    alive_s: float = 0.0  # summed lifetimes (as far as sampled)
    threads: int = 0


def tree_cpu_s(root: int) -> float:
    """CPU s used so far by `root` and its live descendants."""
    procs = _all_procs()
    return sum(procs[pid].cpu_s for pid in descendants(root, procs))


class TreeSampler(threading.Thread):
    """Samples the process tree below `pid` until stopped.

    Every SAMPLE_EVERY_S (cheap: /proc/<pid>/stat, /proc/<pid>/task/*/stat and schedstat):
    which processes are in the tree, the summed RSS, the CPU time of each process, and the
    CPU time and CPU wait (runnable, but no CPU free) of each thread of the processes that
    have used CPU since their last look (THREADS_AFTER_CPU_S).
    Every PSS_EVERY-th sample, and on any sample that finds a new process or the summed RSS
    2% above its highest so far (so a spike is not missed): each process's PSS and RSS
    (smaps_rollup) and its name. smaps_rollup makes the kernel walk the page tables, 1-3 ms
    per process and read: every 0.2 s it would take ~10% of a core from the tool measured."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_pss = self.peak_rss = 0
        self.pss_readable = True
        self.pss_by_name: dict[str, tuple[int, int]] = {}  # at the PSS peak: name -> (bytes, processes)
        self.peak_pss_of_name: dict[str, int] = defaultdict(int)  # name -> its own peak, bytes
        self.cpu: dict[int, float] = {}  # pid -> last CPU s seen
        self.names: dict[int, str] = {}  # pid -> name (a Ray worker keeps its last non-idle one)
        self.threads: dict[int, dict[int, _Thread]] = {}  # pid -> tid -> last sample
        self.threads_read_at: dict[int, float] = {}  # pid -> its CPU s when its threads were last read
        self.own_cpu_s = 0.0
        self.samples = self.full_samples = 0
        self.started, self.peak_pss_at = time.monotonic(), 0.0
        self._stop_event = threading.Event()

    def _process_name(self, pid: int) -> str:
        name = process_name(pid, self.pid)
        if pid not in self.names or name not in ("?", "ray::IDLE"):
            self.names[pid] = name
        return self.names[pid]

    def sample(self) -> None:
        procs = _all_procs()
        pids = descendants(self.pid, procs)
        rss_total = sum(procs[pid].rss for pid in pids)
        for pid in pids:
            # its threads only once it has run THREADS_AFTER_CPU_S since they were last read
            if procs[pid].cpu_s >= self.threads_read_at.get(pid, -1.0) + THREADS_AFTER_CPU_S:
                self.threads.setdefault(pid, {}).update(_thread_stats(pid))
                self.threads_read_at[pid] = procs[pid].cpu_s
            self.cpu[pid] = procs[pid].cpu_s
        full = (self.samples % PSS_EVERY == 0 or rss_total > RSS_JUMP * self.peak_rss
                or any(pid not in self.names for pid in pids))
        self.samples += 1
        if full:
            self.full_sample(pids, procs)
        self.peak_rss = max(self.peak_rss, rss_total)

    def full_sample(self, pids: list[int], procs: dict[int, _Proc]) -> None:
        self.full_samples += 1
        pss_total = rss_total = 0
        by_name: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for pid in pids:
            rollup = _smaps_rollup(pid)
            if rollup is None:  # not ours to read: its RSS stands in
                self.pss_readable = False
                rollup = procs[pid].rss, procs[pid].rss
            name = self._process_name(pid)
            pss_total, rss_total = pss_total + rollup[0], rss_total + rollup[1]
            by_name[name][0] += rollup[0]
            by_name[name][1] += 1
        self.peak_rss = max(self.peak_rss, rss_total)
        for name, (pss, _) in by_name.items():
            self.peak_pss_of_name[name] = max(self.peak_pss_of_name[name], pss)
        if pss_total > self.peak_pss:
            self.peak_pss, self.peak_pss_at = pss_total, time.monotonic() - self.started
            self.pss_by_name = {name: (b, n) for name, (b, n) in by_name.items()}

    def run(self) -> None:
        start = time.thread_time()
        while not self._stop_event.is_set():
            self.sample()
            self.own_cpu_s = time.thread_time() - start
            self._stop_event.wait(SAMPLE_EVERY_S)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()

    def cpu_by_name(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for pid, cpu in self.cpu.items():
            out[self.names.get(pid, "?")] += cpu
        return dict(out)

    def cpu_by_thread(self) -> dict[tuple[str, str], float]:
        """(process name, thread name) -> CPU s; what no thread sample saw (threads that ended
        between samples, processes too short-lived) goes to "(unsampled)"."""
        out: dict[tuple[str, str], float] = defaultdict(float)
        for pid, cpu in self.cpu.items():
            name = self.names.get(pid, "?")
            threads = self.threads.get(pid, {}).values()
            for thread in threads:
                out[name, thread.name] += thread.cpu_s
            out[name, "(unsampled)"] += max(0.0, cpu - sum(t.cpu_s for t in threads))
        return dict(out)

    def runnable_s(self) -> float:
        """Thread-seconds the tree's threads were runnable: on a CPU or waiting for one."""
        return sum(t.cpu_s + t.wait_s for threads in self.threads.values() for t in threads.values())

    def busy_threads(self, min_share: float = 0.05) -> dict[tuple[str, str], ThreadGroup]:
        """(process name, MAIN_THREAD or "other") -> the threads that were on a CPU at least
        `min_share` of their life: their CPU, CPU wait and lifetime summed."""
        out: dict[tuple[str, str], ThreadGroup] = defaultdict(ThreadGroup)
        for pid, threads in self.threads.items():
            for thread in threads.values():
                alive = thread.seen_s - thread.born_s
                if alive > 0 and thread.cpu_s >= min_share * alive:
                    group = out[self.names.get(pid, "?"), thread.name if thread.name == MAIN_THREAD else "other"]
                    group.cpu_s += thread.cpu_s
                    group.wait_s += thread.wait_s
                    group.alive_s += alive
                    group.threads += 1
        return dict(out)


def count_successes(out_dir: Path) -> int:
    """Successes from *_stats.json ("successes" or "num_success"), else .jpg members of tars."""
    total, found = 0, False
    for stats in sorted(out_dir.rglob("*_stats.json")):
        data = json.loads(stats.read_text())
        for key in ("successes", "num_success"):
            if key in data:
                total, found = total + int(data[key]), True
                break
    if found:
        return total
    jpgs = 0
    for tar in sorted(out_dir.rglob("*.tar")):
        with tarfile.open(tar) as t:
            jpgs += sum(1 for m in t if m.name.endswith(".jpg"))
    return jpgs


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _system_busy_s() -> float:
    """CPU seconds the whole machine has been busy (or stolen), from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / TICKS


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def run_measured(cmd: list[str], out_dir: Path, log_path: Path, cwd: Path, env: dict,
                 timeout_s: float, server_pid: int | None = None) -> RunResult:
    """Run `cmd` (stdout+stderr to log_path) and measure it; out_dir is where it writes.
    `server_pid`: the file server, whose CPU over the run is measured apart."""
    log.info("running: %s", " ".join(cmd))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    load = loadavg()
    with log_path.open("w") as log_file:
        server_before = tree_cpu_s(server_pid) if server_pid else 0.0
        cpu_before, busy_before = _children_cpu_s(), _system_busy_s()
        start = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=log_file, stderr=subprocess.STDOUT,
                                start_new_session=True)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        try:
            returncode = proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.error("timed out after %.0f s", timeout_s)
            returncode = -9
        finally:  # also on Ctrl-C: leave no worker of the tool behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        wall = time.monotonic() - start
        busy = _system_busy_s() - busy_before
        server_cpu = tree_cpu_s(server_pid) - server_before if server_pid else 0.0
        sampler.stop()
    if not sampler.pss_readable:
        log.warning("PSS was unreadable for some processes (smaps_rollup); their RSS stands in")
    # Both are lower bounds: rusage misses workers nobody waited for (Ray kills its own),
    # sampling misses the last < 0.2 s of each process. The larger is the closer.
    sampled_cpu = sum(sampler.cpu.values())
    cpu = max(_children_cpu_s() - cpu_before, sampled_cpu)
    successes = count_successes(out_dir) if out_dir.exists() else 0
    background = max(0.0, busy - cpu - server_cpu - sampler.own_cpu_s)
    mb = 2**20
    return RunResult(
        wall_s=wall, peak_pss_mb=sampler.peak_pss / mb, peak_pss_at_s=sampler.peak_pss_at,
        peak_rss_mb=sampler.peak_rss / mb,
        pss_by_name={name: (b / mb, n) for name, (b, n) in sampler.pss_by_name.items()},
        peak_pss_of_name={name: b / mb for name, b in sampler.peak_pss_of_name.items()},
        cpu_s=cpu, cpu_by_name=sampler.cpu_by_name(), cpu_by_thread=sampler.cpu_by_thread(),
        busy_threads=sampler.busy_threads(), runnable_s=sampler.runnable_s(),
        server_cpu_s=server_cpu, background_cpu_s=background, sampler_cpu_s=sampler.own_cpu_s,
        loadavg_before=load, successes=successes, returncode=returncode, log_path=log_path)
