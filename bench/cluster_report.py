"""bench-cluster's figures: what each run measured, the rates and CPU costs derived from it, and the report section."""

from __future__ import annotations

import bisect
import datetime as dt
import statistics
from dataclasses import dataclass
from pathlib import Path

from docs_section import machine_info, versions

HEADING = "## Cluster (make bench-cluster)"
REPO = Path(__file__).resolve().parent.parent
MAX_GROWTH = 1.10  # issue #14: CPU per image and per sample may grow by at most 10% from 1 to 3 nodes
OTHER_WORK_SHARE = 0.10  # above this share of the machine's busy CPU outside the cluster, the report warns


@dataclass(frozen=True)
class Cluster:
    """A cluster `infra/local-cluster.sh up` started: its worker nodes and the environment it printed."""

    num_nodes: int
    node_cpus: int
    subnet: str
    env: dict[str, str]  # RAY_ADDRESS, AWS_*, CLIPLINE_HOME, CLUSTER_ALLOWED_NETWORKS, CLIPLINE_RAY_NODE_IP
    up_s: float  # `up` from start to its exports

    @property
    def cpus(self) -> int:
        return self.num_nodes * self.node_cpus

    @property
    def driver_ip(self) -> str:
        return f"{self.subnet}.1"

    def node_ip(self, worker: int) -> str:
        """Worker node `worker`'s address; 0 is the head's."""
        return f"{self.subnet}.{10 + worker}"

    def worker_of(self, ip: str) -> int:
        return int(ip.rsplit(".", 1)[1]) - 10


@dataclass(frozen=True)
class Sample:
    t: float  # epoch seconds
    busy_s: float  # the machine's busy CPU seconds since the meter started
    own_s: float  # CPU seconds of the cluster's own processes since then


@dataclass(frozen=True)
class RunCpu:
    """One clipline command's window and the CPU spent in it."""

    start: float  # epoch seconds, launch
    end: float  # exit
    load_before: float  # 1-minute load average
    load_after: float
    samples: list[Sample]
    by_part: dict[str, float]  # CPU s of the cluster's own processes by part (a node, the command, S3, nginx)
    meter_cpu_s: float  # the meter's own sampling (part of the machine's busy time)
    command: str

    @property
    def wall_s(self) -> float:
        return self.end - self.start

    def _at(self, t: float, field: str) -> float:
        """`field` of the samples at time t, interpolated."""
        times = [s.t for s in self.samples]
        i = min(max(bisect.bisect_left(times, t), 1), len(times) - 1)
        a, b = self.samples[i - 1], self.samples[i]
        share = min(max((t - a.t) / (b.t - a.t), 0.0), 1.0) if b.t > a.t else 1.0
        return getattr(a, field) + share * (getattr(b, field) - getattr(a, field))

    def machine_s(self, t0: float | None = None, t1: float | None = None) -> float:
        """The machine's busy CPU s between t0 and t1 (the whole run by default)."""
        return self._at(t1 or self.end, "busy_s") - self._at(t0 or self.start, "busy_s")

    def own_s(self, t0: float | None = None, t1: float | None = None) -> float:
        return self._at(t1 or self.end, "own_s") - self._at(t0 or self.start, "own_s")


@dataclass(frozen=True)
class Steady:
    """The part of a run after its start-up: work done, seconds, and CPU s spent in it."""

    work: int  # images or samples
    seconds: float
    machine_s: float
    own_s: float

    @property
    def rate(self) -> float:
        return self.work / self.seconds

    def ms_per(self, cpu_s: float) -> float:
        return 1000 * cpu_s / self.work

    @property
    def cpu_ms(self) -> tuple[float, float]:
        """CPU ms per image or sample: (machine, cluster processes)."""
        return self.ms_per(self.machine_s), self.ms_per(self.own_s)


@dataclass(frozen=True)
class IngestRun:
    workers: int  # shards crawled at once
    shards: list[tuple[float, int]]  # (committed at, successes), in commit order
    ips: set[str]  # nodes that crawled
    cpu: RunCpu

    @property
    def images(self) -> int:
        return sum(ok for _, ok in self.shards)

    @property
    def first_shard_s(self) -> float:
        return self.shards[0][0] - self.cpu.start

    def whole(self) -> Steady:
        return Steady(self.images, self.cpu.wall_s, self.cpu.machine_s(), self.cpu.own_s())

    def steady(self) -> Steady:
        """From the commit of the first round of shards (one per worker) to the last commit."""
        first = min(self.workers, len(self.shards) - 1) - 1
        if first < 0:
            return self.whole()
        t0, t1 = self.shards[first][0], self.shards[-1][0]
        return Steady(sum(ok for _, ok in self.shards[first + 1:]), t1 - t0, self.cpu.machine_s(t0, t1),
                      self.cpu.own_s(t0, t1))

    def summary(self) -> str:
        s = self.steady()
        return (f"{self.images} images, {len(self.shards)} shards on {len(self.ips)} nodes, steady {s.rate:.1f} "
                f"images/s, {s.ms_per(s.machine_s):.1f} CPU ms/image, wall {self.cpu.wall_s:.1f} s")


@dataclass(frozen=True)
class TrainRun:
    workers: int
    global_batch: int  # samples per step, all workers
    steps: int
    skip: int  # first steps left out of the steady state
    points: list[tuple[int, float]]  # (step, epoch seconds its metrics row was written)
    ips: set[str]  # nodes the workers ran on
    cpu: RunCpu

    @property
    def first_step_s(self) -> float:
        return self.points[0][1] - self.cpu.start

    def whole(self) -> Steady:
        return Steady(self.steps * self.global_batch, self.cpu.wall_s, self.cpu.machine_s(), self.cpu.own_s())

    def steady(self) -> Steady:
        """From the first logged step at or after `skip` to the last."""
        chosen = [p for p in self.points if p[0] >= self.skip]
        (s0, t0), (s1, t1) = chosen[0], chosen[-1]
        return Steady((s1 - s0) * self.global_batch, t1 - t0, self.cpu.machine_s(t0, t1), self.cpu.own_s(t0, t1))

    def summary(self) -> str:
        s = self.steady()
        return (f"{self.steps} steps x {self.global_batch} on {len(self.ips)} nodes, steady {s.rate:.1f} samples/s, "
                f"{s.ms_per(s.machine_s):.1f} CPU ms/sample, wall {self.cpu.wall_s:.1f} s")


@dataclass(frozen=True)
class NodeCount:
    """Everything measured on one cluster size."""

    nodes: int
    up_s: float
    idle_cores: float  # CPU of the idle cluster's own processes, in cores
    ingest: IngestRun
    trains: list[TrainRun]  # in the order run: the first beside the ingest, the others on fresh clusters later
    server: str  # the file server, e.g. nginx/1.22.1

    @property
    def train(self) -> TrainRun:
        """The training run of median steady CPU per sample (machine; the lower middle one of an even count)."""
        ranked = sorted(self.trains, key=lambda run: run.steady().cpu_ms[0])
        return ranked[(len(ranked) - 1) // 2]

    def train_ms(self) -> tuple[float, float]:
        """Steady CPU ms per sample, median over the training runs: (machine, cluster processes)."""
        machine, cluster = zip(*(run.steady().cpu_ms for run in self.trains), strict=True)
        return statistics.median(machine), statistics.median(cluster)


@dataclass(frozen=True)
class Resume:
    """A node lost under elastic training, and the way back to a training step."""

    command: str
    victim: str  # IP of the killed node
    last_step: int  # last step logged before the kill
    killed_at: float
    group_at: float  # started_at of the first worker of the world-size-1 group
    from_step: int  # the checkpoint it went on from
    step: int  # the first step logged after the kill
    stepped_at: float
    phases: dict[str, float | None]  # what happened in between: seconds after the kill (None: not seen)

    @property
    def to_group_s(self) -> float:
        return self.group_at - self.killed_at

    @property
    def to_step_s(self) -> float:
        return self.stepped_at - self.killed_at


@dataclass(frozen=True)
class ResumeFailure:
    """The kill-to-resume run did not get back to training."""

    reason: str


# ---------------------------------------------------------------- the section


def setup_lines(rows: list[NodeCount], args, settings: dict[str, str]) -> list[str]:
    now = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    loads = [x for r in rows for run in (r.ingest.cpu, *(t.cpu for t in r.trains))
             for x in (run.load_before, run.load_after)]
    load = f"{min(loads):.2f} to {max(loads):.2f}" if loads else "-"
    return [
        HEADING, "", f"- Date: {now}", f"- Machine: {machine_info()}",
        f"- Versions: {versions('ray', 'torch', 'prefect')}",
        f"- Cluster: `infra/local-cluster.sh up N` with HEAD_CPUS={settings['HEAD_CPUS']} and "
        f"NODE_CPUS={settings['NODE_CPUS']}: *N worker nodes* are N Ray nodes of {settings['NODE_CPUS']} CPU each, "
        "each in its own network and mount namespace on a bridge (no shared disk); the head only coordinates (GCS, "
        "no CPUs: no task lands there) and the driver attaches to a CPU-less node of its own, as on a real cluster. "
        "Inputs, outputs and results stores are on the cluster's S3 server (moto, on the bridge). The nodes share "
        "this machine's cores: once node CPUs outnumber them, rates stop growing and only overhead is measured",
        f"- Ingest: {args.num_urls} URLs of real photos (bench-ingest's: scikit-image photos, 100-1500 px, one "
        f"distinct JPEG per row) served by {rows[0].server if rows else 'nginx'} on the bridge; `clipline ingest "
        f"--workers N` (one shard at a time per node CPU), {args.threads} threads per worker, "
        f"{args.samples_per_shard} samples per shard, 256 px center crop, JPEG out",
        f"- Training: `clipline train --workers N` (one Ray Train worker per node), `clipline-tiny`, fp32, "
        f"{args.batch_size} samples per worker per step (global batch {args.batch_size} x N), {args.steps} steps, "
        "shards of real MNIST digits (bench-train's, 20 x 250) sampled with replacement, 1 data-loader process per "
        f"worker. Training runs {args.train_runs} times per node count, in rounds over the node counts (the first "
        f"round {', '.join(map(str, sorted(args.nodes)))} nodes, every other round after it in reverse, every run on a "
        "fresh cluster), so that a slow spell of the machine falls on every node count alike and a machine slowing "
        "down over the hour does not always reach the largest count last; the first round also runs the ingest. "
        "The tables show the run of median steady CPU per sample (machine); the ratio below takes the medians",
        "- CPU: *machine* is the whole machine's busy CPU (user + system + irq + steal, /proc/stat) over the window, "
        "since the nodes' processes are not children of the harness; *cluster* is the CPU of the cluster's own "
        "processes (every process marked with a node's CLIPLINE_CLUSTER_NODE, the clipline command's session, "
        "the S3 server, nginx; /proc, every second), which other work on the machine does not disturb. "
        f"*Run*: launch to exit; *steady*: ingest from the commit of the first round of shards to the last commit, "
        f"training from step {args.skip} to the last step (metrics rows' times)",
        f"- 1-minute load average before and after each run: {load} (the harness waits up to "
        f"{args.load_wait:.0f} s for it to drop below {args.max_load} before each run)", ""]


def ratio(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """CPU per unit of work, b / a: (machine, cluster processes)."""
    return b[0] / a[0], b[1] / a[1]


def other_cpu_s(run: RunCpu) -> float:
    """Busy CPU of the machine outside the cluster's processes and the meter: other work on the machine."""
    return max(0.0, run.machine_s() - run.own_s() - run.meter_cpu_s)


def ratio_lines(rows: list[NodeCount]) -> list[str]:
    """CPU per image and per sample on the most nodes over the fewest: the overhead figure of issue #14."""
    if len(rows) < 2:
        return []
    lo, hi = rows[0], rows[-1]
    out = []
    runs = [run for r in rows for run in (r.ingest.cpu, *(t.cpu for t in r.trains))]
    other = max(other_cpu_s(run) / run.machine_s() for run in runs)
    if other > OTHER_WORK_SHARE:
        out += [f"Note: the machine was not idle: in one run {other:.0%} of its busy CPU was outside the cluster's "
                "processes (see the CPU table below), so the *machine* figures carry other work; the *cluster* "
                "figures do not.", ""]
    for what, whole_of, a, b, steady in (
            ("image (ingest)", "", lo.ingest, hi.ingest, ratio(lo.ingest.steady().cpu_ms, hi.ingest.steady().cpu_ms)),
            (f"sample (training, median of {len(lo.trains)} and {len(hi.trains)} runs)", " (the median runs)",
             lo.train, hi.train, ratio(lo.train_ms(), hi.train_ms()))):
        run = ratio(a.whole().cpu_ms, b.whole().cpu_ms)
        verdict = ", ".join(f"{name} {'within' if x <= MAX_GROWTH else '**above**'}"
                            for name, x in zip(("machine", "cluster"), steady, strict=True))
        out += [f"**CPU per {what}, {hi.nodes} / {lo.nodes} nodes, steady: {steady[0]:.2f}x machine, "
                f"{steady[1]:.2f}x cluster** ({verdict} the {MAX_GROWTH - 1:.0%} allowed by issue #14); whole run "
                f"with start-up{whole_of}: {run[0]:.2f}x machine, "
                f"{run[1]:.2f}x cluster.", ""]
    return out


def ms(cpu_ms: tuple[float, float]) -> str:
    return "{:.2f} / {:.2f}".format(*cpu_ms)


def tables(rows: list[NodeCount]) -> list[str]:
    out = ["Start-up (`up`: `infra/local-cluster.sh up N` to its exports; idle: CPU of the idle cluster's own "
           "processes, in cores; first shard / first step: launch of the command to its first committed shard / "
           "its step-1 metrics row):", "",
           "| worker nodes | `up` s | idle cluster CPU (cores) | ingest: first shard s | training: first step s |",
           "| ---: | ---: | ---: | ---: | ---: |"]
    out += [f"| {r.nodes} | {r.up_s:.1f} | {r.idle_cores:.3f} | {r.ingest.first_shard_s:.1f} | "
            f"{r.train.first_step_s:.1f} |" for r in rows]
    out += ["", "Ingest (CPU ms/image: machine / cluster):", "",
            "| worker nodes | crawl workers | nodes used | images | wall s | images/s run | images/s steady "
            "| CPU ms/image run | CPU ms/image steady | load before -> after |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        i, c = r.ingest, r.ingest.cpu
        out.append(f"| {r.nodes} | {i.workers} | {len(i.ips)} | {i.images} | {c.wall_s:.1f} | {i.whole().rate:.1f} "
                   f"| {i.steady().rate:.1f} | {ms(i.whole().cpu_ms)} | {ms(i.steady().cpu_ms)} "
                   f"| {c.load_before:.2f} -> {c.load_after:.2f} |")
    out += ["", "Training, the median run of each node count (CPU ms/sample: machine / cluster):", "",
            "| worker nodes | training workers | nodes used | global batch | steps | wall s | samples/s run "
            "| samples/s steady | CPU ms/sample run | CPU ms/sample steady | load before -> after |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        t, c = r.train, r.train.cpu
        out.append(f"| {r.nodes} | {t.workers} | {len(t.ips)} | {t.global_batch} | {t.steps} | {c.wall_s:.1f} "
                   f"| {t.whole().rate:.1f} | {t.steady().rate:.1f} | {ms(t.whole().cpu_ms)} | {ms(t.steady().cpu_ms)} "
                   f"| {c.load_before:.2f} -> {c.load_after:.2f} |")
    out += ["", "Training, every run (steady CPU ms/sample, machine / cluster, in the order run; each later run on a "
            "fresh cluster, in the next round over the node counts):", "",
            "| worker nodes | " + " | ".join(f"run {i + 1}" for i in range(len(rows[0].trains))) + " | median |",
            "|" + " ---: |" * (len(rows[0].trains) + 2)]
    for r in rows:
        out.append(f"| {r.nodes} | " + " | ".join(ms(t.steady().cpu_ms) for t in r.trains) + f" | {ms(r.train_ms())} |")
    return [*out, ""]


def parts_lines(rows: list[NodeCount]) -> list[str]:
    out = ["Where the CPU went (CPU s over the run; the cluster's by part, *node X* being every process of that "
           "node: its raylet, agents and Ray workers; the harness's own sampling; and the rest of the machine's "
           "busy time, other processes):", "",
           "| worker nodes | run | machine CPU s | cluster CPU s | by part | sampling | other processes |",
           "| ---: | --- | ---: | ---: | --- | ---: | ---: |"]
    for r in rows:
        for name, run in (("ingest", r.ingest.cpu), ("training (median run)", r.train.cpu)):
            parts = ", ".join(f"{k} {v:.1f}" for k, v in sorted(run.by_part.items(), key=lambda kv: -kv[1]))
            out.append(f"| {r.nodes} | {name} | {run.machine_s():.1f} | {run.own_s():.1f} | {parts} "
                       f"| {run.meter_cpu_s:.1f} | {other_cpu_s(run):.1f} |")
    return [*out, ""]


def resume_lines(resume: Resume | ResumeFailure | None, args) -> list[str]:
    if resume is None:
        return ["Kill-to-resume: not measured in this run (`--no-resume`).", ""]
    if isinstance(resume, ResumeFailure):
        return [f"Kill-to-resume: **failed**: {resume.reason} (the run's output is in `.bench/cluster/logs/`).", ""]
    timeout = "Ray's default, 60 s" if args.group_start_timeout_s is None else f"{args.group_start_timeout_s:g} s"
    out = [
        "Kill-to-resume: elastic training on 2 worker nodes (one worker each), `--workers 2 --min-workers 1 "
        f"--resize-interval-s 5 --checkpoint-every 5 --log-every 1`, {args.resume_steps} steps; once step "
        f"{args.kill_at_step} is logged, `infra/local-cluster.sh kill-node I` SIGKILLs every process of a node that "
        "hosts a training worker (found in the `train_workers` table). Times from the kill: to the `started_at` of "
        "the first `train_workers` row with world size 1 (the smaller group is up), and to the first "
        f"`train_metrics` row written after the kill (training goes on). RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S: "
        f"{timeout}.", "",
        "| killed node | last step before | kill -> world-size-1 group s | kill -> next logged step s | went on "
        "from checkpoint | first step after |", "| --- | ---: | ---: | ---: | ---: | ---: |",
        f"| {resume.victim} | {resume.last_step} | {resume.to_group_s:.1f} | {resume.to_step_s:.1f} "
        f"| {resume.from_step} | {resume.step} |", "",
        "Where the time went (seconds after the kill at which the run's output first said so; Ray forwards its "
        "actors' lines to the driver within about a second):", "",
        "| " + " | ".join(resume.phases) + " | world-size-1 group up | next step logged |",
        "|" + " ---: |" * (len(resume.phases) + 2),
        "| " + " | ".join("-" if t is None else f"{t:.1f}" for t in resume.phases.values())
        + f" | {resume.to_group_s:.1f} | {resume.to_step_s:.1f} |", ""]
    if resume.phases.get("the 2-worker start times out") is not None:
        out += ["What bounds it: Ray Train retries at once, and while the GCS has not yet marked the lost node dead "
                "its CPU still counts as free, so the controller asks for 2 workers again; that placement group "
                "cannot be placed, and only when RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S runs out does it start the "
                "1 worker the cluster has. Kill-to-resume is about that timeout plus the smaller group's start-up "
                "and checkpoint restore: lower the variable (e.g. `--group-start-timeout-s 30`) to shorten it, at "
                "the risk of giving up on a group that is only slow to start.", ""]
    return out


def render(rows: list[NodeCount], resume: Resume | ResumeFailure | None, args, settings: dict[str, str],
           command: str) -> str:
    lines = setup_lines(rows, args, settings) + tables(rows) + ratio_lines(rows) + parts_lines(rows)
    lines += resume_lines(resume, args)
    lines += ["Commands (`make bench-cluster` runs `python bench/cluster.py` without options; each command's output "
              "is kept in `.bench/cluster/logs/`):", "", "```", command]
    lines += [run.command for r in rows for run in (r.ingest.cpu, *(t.cpu for t in r.trains))]
    lines += [resume.command] if isinstance(resume, Resume) else []
    return "\n".join([*lines, "```", ""])
