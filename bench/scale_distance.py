"""`make bench-scale-distance`: peak memory and time of distances and evaluation at 10,000-100,000 samples (#15).

Each step is the call clipline's stage makes, on synthetic float32 features shaped like CLIP's (unit vectors in
Gaussian clusters): `w1` (per pair of `compare.pairwise_distances`) by `auto`, `sliced` and, where feasible,
`exact`; `evaluate_zeroshot` (ensemble, vote), `evaluate_retrieval` and `evaluate_probe` on a `PairContext`
whose features are given instead of embedded. Every step runs in a fresh process that first imports what any
step imports and builds its inputs; a process that stops there (an `inputs` step) is the floor, so "above
inputs" is the step's peak RSS (VmHWM) minus the floor's.

    .venv/bin/python bench/scale_distance.py --sizes 10000 30000 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from docs_section import machine_info, update_section, versions

from clipline.pipelines.config import TransportConfig
from clipline.pipelines.distance.wasserstein import w1
from clipline.pipelines.eval.checkpoints import CheckpointRef
from clipline.pipelines.eval.context import ImageSet, PairContext
from clipline.pipelines.eval.datasets import EvalDataset
from clipline.pipelines.eval.features import Encoder
from clipline.pipelines.eval.probe import ProbeSettings, evaluate_probe
from clipline.pipelines.eval.prompts import DEFAULT_TEMPLATES
from clipline.pipelines.eval.retrieval import evaluate_retrieval
from clipline.pipelines.eval.zeroshot import evaluate_zeroshot

log = logging.getLogger("bench.scale_distance")
REPO = Path(__file__).resolve().parents[1]
HEADING = "## Distances and evaluation at scale (make bench-scale-distance)"
# Rows generated at once: the output is the only n x d allocation, and the few 2 MB temporaries (freed, but in
# the floor's peak, where they would hide as much of a step's own allocations) stay small.
BLOCK = 1024
NUM_CLUSTERS = 100  # distance inputs: mixture components on the sphere
IMAGE_SPREAD = 0.16  # per-coordinate noise around a class centre: ensemble zero-shot acc1 ~0.65 at 1,000 classes
PROMPT_SPREAD = 0.16  # template noise around a class centre (ViT-B/32 on ImageNet: 0.63)
CAPTION_SPREAD = 0.08  # caption noise around its own image: cos(image, caption) ~0.5
MEMORY_MARGIN = 0.8  # a step with n x n matrices runs only if they fit in this share of MemAvailable


def clustered(rng: np.random.Generator, centres: np.ndarray, which: np.ndarray, spread: float) -> np.ndarray:
    """(len(which), d) float32 unit vectors, row i drawn around centres[which[i]] with `spread` noise per coordinate."""
    out = np.empty((len(which), centres.shape[1]), np.float32)
    for start in range(0, len(out), BLOCK):
        rows = out[start:start + BLOCK]
        rows[:] = centres[which[start:start + BLOCK]]
        rows += np.float32(spread) * rng.standard_normal(rows.shape, dtype=np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return out


def unit_vectors(rng: np.random.Generator, num: int, dim: int) -> np.ndarray:
    return clustered(rng, np.zeros((1, dim), np.float32), np.zeros(num, np.int64), 1.0)


def distance_inputs(n: int, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    """Two sets of n points from one set of clusters, mixed in different proportions (uniform vs 1/(k+1))."""
    rng = np.random.default_rng([args.seed, n])
    centres = unit_vectors(rng, NUM_CLUSTERS, args.dim)
    skewed = 1.0 / np.arange(1, NUM_CLUSTERS + 1)
    x = clustered(rng, centres, rng.integers(NUM_CLUSTERS, size=n), IMAGE_SPREAD)
    y = clustered(rng, centres, rng.choice(NUM_CLUSTERS, size=n, p=skewed / skewed.sum()), IMAGE_SPREAD)
    return x, y


def eval_inputs(n: int, args: argparse.Namespace):
    """A PairContext over n images of --classes balanced classes, one caption each, CLIP's 7
    templates."""
    classes = args.classes
    rng = np.random.default_rng([args.seed, n])
    centres = unit_vectors(rng, classes, args.dim)
    labels = rng.permutation(np.arange(n) % classes)
    images = clustered(rng, centres, labels, IMAGE_SPREAD)
    prompts = clustered(rng, centres, np.tile(np.arange(classes), len(DEFAULT_TEMPLATES)), PROMPT_SPREAD)
    captions = clustered(rng, images, np.arange(n), CAPTION_SPREAD)
    dataset = EvalDataset("synthetic", "synthetic", tuple(f"{i:07d}" for i in range(n)), (), labels,
                          tuple((f"caption {i}",) for i in range(n)),
                          tuple(f"class {c}" for c in range(classes)), DEFAULT_TEMPLATES)
    context = PairContext(CheckpointRef("synthetic", "open_clip", "synthetic"), dataset, batch_size=64)
    # The cached features a real context embeds on first use, given here (a cached_property takes assignment).
    context.encoder = Encoder("synthetic", torch.nn.Identity(), None, None, args.dim, torch.device("cpu"))
    context.images = ImageSet(images, np.arange(n), 0)
    context.train_images = None
    context.prompt_features = prompts.reshape(len(DEFAULT_TEMPLATES), classes, args.dim)
    context.caption_features = (captions, np.arange(n))
    return context


def run_w1(inputs, args: argparse.Namespace, method: str) -> str:
    """`w1` as compare.py calls it; the note is the method that ran (`auto` resolves to one)."""
    result = w1(*inputs, TransportConfig(method=method), seed=args.seed)
    return f"{result.method}, W1 {result.value:.4f}"


def run_zeroshot(context, args: argparse.Namespace, strategy: str) -> str:
    (output,) = evaluate_zeroshot(context, [strategy])
    return f"acc1 {output.result.metrics['acc1']:.3f}"


def run_retrieval(context, args: argparse.Namespace) -> str:
    (output,) = evaluate_retrieval(context, [1, 5, 10])
    return f"image R@1 {output.result.metrics['image_retrieval_recall@1']:.3f}"


def run_probe(context, args: argparse.Namespace) -> str:
    (output,) = evaluate_probe(context, ProbeSettings(seed=args.seed))
    acc1, classes = output.result.metrics["acc1"], len(context.dataset.classnames)
    return f"acc1 {acc1:.3f}" + (f" (chance: 1/{classes:,})" if acc1 < 2 / classes else "")


@dataclass(frozen=True)
class Step:
    """One measured call: the inputs its process builds, and the call (returning a short note for the table)."""

    build: Callable[[int, argparse.Namespace], object]
    run: Callable[[object, argparse.Namespace], str]
    quadratic_bytes: int = 0  # bytes per n^2 of the n x n matrices the call holds at once (0: none)


STEPS: dict[str, Step] = {
    "inputs (distances)": Step(distance_inputs, lambda inputs, args: ""),
    "w1 auto": Step(distance_inputs, partial(run_w1, method="auto")),
    "w1 sliced": Step(distance_inputs, partial(run_w1, method="sliced")),
    "w1 exact": Step(distance_inputs, partial(run_w1, method="exact"), quadratic_bytes=16),  # cost + POT's copy
    "inputs (evaluation)": Step(eval_inputs, lambda context, args: ""),
    "zeroshot ensemble": Step(eval_inputs, partial(run_zeroshot, strategy="ensemble")),
    "zeroshot vote": Step(eval_inputs, partial(run_zeroshot, strategy="vote")),
    "retrieval": Step(eval_inputs, run_retrieval),  # scores in blocks of TOPK_ROWS rows (pipelines/eval/metrics.py)
    "linear probe": Step(eval_inputs, run_probe),
}


def floor_of(step: str) -> str:
    """The `inputs` step that builds the same inputs as `step`."""
    return next(name for name, s in STEPS.items() if name.startswith("inputs") and s.build is STEPS[step].build)


def proc_bytes(path: str, key: str) -> int:
    """A kB field of a /proc file (VmHWM: of /proc/self/status is this process's peak RSS), in bytes."""
    line = next(x for x in Path(path).read_text().splitlines() if x.startswith(f"{key}:"))
    return int(line.split()[1]) * 1024


def run_child(step: str, n: int, args: argparse.Namespace) -> dict:
    """In the fresh process: import what any step imports lazily, build the inputs, then time the call alone."""
    import ot  # noqa: F401  exact's
    import sklearn.linear_model  # noqa: F401  the probe's
    import sklearn.model_selection  # noqa: F401

    inputs = STEPS[step].build(n, args)
    wall, cpu = time.perf_counter(), time.process_time()
    note = STEPS[step].run(inputs, args)
    return {"seconds": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu,
            "peak_mb": proc_bytes("/proc/self/status", "VmHWM") / 2**20, "note": note}


def measure(step: str, n: int, args: argparse.Namespace) -> dict:
    """Run one step in a fresh process; a step whose n x n matrices cannot fit is not run, and says why, as is one
    that fails or runs out of time."""
    need, available = STEPS[step].quadratic_bytes * n * n, proc_bytes("/proc/meminfo", "MemAvailable")
    if need > MEMORY_MARGIN * available:
        reason = f"not run: its n x n matrices need {need / 1e9:.0f} GB, {available / 1e9:.0f} GB available"
        log.warning("%s n=%d %s", step, n, reason)
        return {"skipped": reason}
    command = [sys.executable, __file__, "--child", step, "--n", str(n), "--dim", str(args.dim),
               "--classes", str(args.classes), "--seed", str(args.seed)]
    timeout, flag = (args.probe_timeout, "--probe-timeout") if "probe" in step else (args.timeout, "--timeout")
    try:
        done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        log.warning("%s n=%d: over %d s, stopped", step, n, timeout)
        return {"skipped": f"stopped after {timeout} s ({flag})"}
    if done.returncode != 0:  # recorded, not raised: the other steps' figures still get written
        log.error("%s n=%d failed:\n%s", step, n, done.stderr[-3000:])
        return {"skipped": f"failed: {done.stderr.strip().splitlines()[-1][:200]}"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    log.info("%s n=%d: %.2f s, %.2f CPU s, peak %.0f MB, %s", step, n, result["seconds"], result["cpu_s"],
             result["peak_mb"], result["note"])
    return result


def plan(args: argparse.Namespace, threshold: int) -> tuple[list[tuple[str, int]], dict[str, list[int]]]:
    """The (step, n) runs, floors first, and the sizes each step's growth is read over."""
    growth = {"w1 auto": args.sizes, "w1 sliced": args.sizes, "w1 exact": args.exact_sizes,
              "zeroshot ensemble": args.sizes, "zeroshot vote": args.sizes, "retrieval": args.sizes}
    if not args.skip_probe:
        growth["linear probe"] = args.probe_sizes or args.sizes
    runs = [(step, n) for step, sizes in growth.items() for n in sizes]
    runs += [("w1 auto", threshold), ("w1 auto", threshold + 1)]  # where auto leaves exact
    floors = [(floor_of(step), n) for step, n in runs]
    return list(dict.fromkeys(floors + runs)), growth


def above(results: dict, step: str, n: int) -> float | None:
    """Peak MB of the step above its floor (the same inputs and imports, no call); None where it did not run."""
    own, floor = results[step, n], results[floor_of(step), n]
    return None if "skipped" in own else own["peak_mb"] - floor["peak_mb"]


def table(results: dict) -> list[str]:
    lines = ["| step | n | ran | time s | CPU s | peak RSS MB | above inputs MB |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: |"]
    for (step, n), r in sorted(results.items(), key=lambda item: (list(STEPS).index(item[0][0]), item[0][1])):
        if "skipped" in r:
            lines.append(f"| {step} | {n:,} | {r['skipped']} | - | - | - | - |")
            continue
        extra = "-" if step.startswith("inputs") else f"{above(results, step, n):,.0f}"
        lines.append(f"| {step} | {n:,} | {r['note'] or '-'} | {r['seconds']:.2f} | {r['cpu_s']:.2f} "
                     f"| {r['peak_mb']:,.0f} | {extra} |")
    return lines


def exponent(results: dict, step: str, low: int, high: int, key: str) -> float:
    """p such that the figure (memory above inputs, or seconds) grows as n^p from n = low to high (1: linear)."""
    figure = {n: above(results, step, n) if key == "memory" else results[step, n]["seconds"] for n in (low, high)}
    floor = 1.0 if key == "memory" else 0.01  # MB or s: below it, a figure is noise
    return math.log(max(figure[high], floor) / max(figure[low], floor), high / low)


def growth_table(results: dict, growth: dict[str, list[int]]) -> list[str]:
    """Per step, memory above inputs at each n, and the exponent p of n^p it and the time grow by, over the whole
    range and between the two largest n (there a constant part weighs least and an n^2 part most: the verdict)."""
    lines = ["| step | n | above inputs MB | memory p (whole range; two largest n) | time p (same) | "
             "memory at most linear? |", "| --- | --- | --- | ---: | ---: | --- |"]
    for step, sizes in growth.items():
        ns = sorted(n for n in sizes if "skipped" not in results[step, n])
        if len(ns) < 2:
            continue
        memory = [exponent(results, step, a, b, "memory") for a, b in ((ns[0], ns[-1]), (ns[-2], ns[-1]))]
        seconds = [exponent(results, step, a, b, "seconds") for a, b in ((ns[0], ns[-1]), (ns[-2], ns[-1]))]
        verdict = "yes" if memory[1] <= 1.1 else f"**no** (n^{memory[1]:.1f})"
        lines.append(f"| {step} | {' -> '.join(f'{n:,}' for n in ns)} | "
                     f"{' -> '.join(f'{above(results, step, n):,.0f}' for n in ns)} | {memory[0]:.2f}; {memory[1]:.2f} "
                     f"| {seconds[0]:.2f}; {seconds[1]:.2f} | {verdict} |")
    return lines


def auto_line(results: dict, threshold: int, exact_sizes: list[int]) -> str:
    """Where `auto` switches from exact to sliced, as measured, and what exact's memory is made of."""
    at, past = results["w1 auto", threshold], results["w1 auto", threshold + 1]
    largest = max(exact_sizes)
    held = above(results, "w1 exact", largest)
    matrices = "" if held is None else (f" (at n = {largest:,}: {held:,.0f} MB above inputs, as much as "
                                        f"{held * 2**20 / (8 * largest**2):.1f} n x n float64 matrices)")
    return (f"`auto` leaves exact W1 past `TransportConfig.max_exact_samples` = {threshold:,} points per side (the "
            f"larger side decides): at n = {threshold:,} it ran {at.get('note', '-').split(',')[0]} "
            f"({at.get('seconds', 0):.2f} s), at n = {threshold + 1:,} {past.get('note', '-').split(',')[0]} "
            f"({past.get('seconds', 0):.2f} s). Exact holds the n x n float64 cost matrix and POT's network-simplex "
            f"arrays of the same size{matrices}: quadratic by design, and `auto` caps it at the threshold.")


def render(results: dict, growth: dict[str, list[int]], args: argparse.Namespace, threshold: int,
           loads: tuple[str, str], command: str) -> str:
    return "\n".join([
        HEADING, "",
        f"Run of {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC. Machine: {machine_info()}; load average {loads[0]} at "
        f"the start, {loads[1]} at the end. Command: `make bench-scale-distance` (`{command}`). "
        f"Versions: {versions('numpy', 'torch', 'POT', 'scikit-learn')}.", "",
        f"Inputs: float32 unit vectors in {args.dim} dims, in Gaussian clusters as CLIP features are (distances: two "
        f"sets of n points from {NUM_CLUSTERS} clusters in different proportions; evaluation: n images of "
        f"{args.classes:,} balanced classes, {args.classes:,} x 7 template prompts, one caption per image). Each row "
        "is a fresh process that imports POT, torch, scikit-learn and every evaluation task, builds its inputs, then "
        "makes the one call; time and CPU s are the call alone; peak RSS is the process's VmHWM; above inputs "
        "subtracts the `inputs` row of the same n (imports and arrays, no call). Each step is the stage's own "
        "function: `w1` (per pair of `compare.pairwise_distances`), `evaluate_zeroshot`, `evaluate_retrieval`, "
        "`evaluate_probe` on a `PairContext` holding the features.", "",
        *table(results), "",
        "Growth with n (p: the exponent of n^p the figure follows; 1 is linear, 2 quadratic):", "",
        *growth_table(results, growth), "",
        auto_line(results, threshold, args.exact_sizes), "",
        "What bounds each figure: sliced W1 holds float32 projections of 128 directions at a time (a few "
        "128 x n arrays, `PROJECTION_CHUNK`). Zero-shot holds the confusion-matrix PNG's canvas whatever n is "
        "(`confusion_png` draws it at up to 3,000 x 3,000 px; matplotlib resamples the image in float64 RGBA), "
        "then ensemble the (n, C) float32 logits and a scaled copy of the image features, vote two (n, C) float64 "
        "arrays (votes and summed logits) and their float64 temporaries. The probe holds sklearn's (n, C) "
        "arrays in the features' dtype and clipline's (test n, C) float64 scores; its L-BFGS tolerance is relative "
        "to the starting gradient (pipelines/eval/probe.py: with sklearn's absolute 1e-4 a 1,000-class probe stopped "
        "before its first step and scored chance). Retrieval scores every (text, image) pair, so its time grows as "
        "n^2, but holds one block of 1,024 rows of scores at a time (`TOPK_ROWS`, pipelines/eval/metrics.py and "
        "retrieval.py) and the per-image top 5: its memory grows with n (whole score matrices, as before, took "
        "8 n^2 bytes: 7.2 GB at 30,000, 80 GB at 100,000).",
        *probe_lines(results, args), ""])


def probe_lines(results: dict, args: argparse.Namespace) -> list[str]:
    """A warning where the probe scored chance: a fit that stopped before its first step times one gradient."""
    if not any("chance" in r.get("note", "") for (step, _), r in results.items() if step == "linear probe"):
        return []
    return ["", f"**The probe at {args.classes:,} classes scored chance: its L-BFGS fit did not iterate, so those "
            "rows time one gradient, not a fit.**"]


def parse_args(argv: list[str]) -> argparse.Namespace:
    formatter = type("Formatter", (argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter), {})
    p = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000],
                   help="sample counts n: points per side for W1, images (and captions) for evaluation")
    p.add_argument("--exact-sizes", type=int, nargs="+", default=[2_500, 5_000],
                   help="n at which exact W1 runs too (its memory grows as n^2: keep these small)")
    p.add_argument("--probe-sizes", type=int, nargs="+",
                   help="n for the linear probe (default: --sizes); smaller where it is too slow")
    p.add_argument("--skip-probe", action="store_true", help="leave out the linear probe")
    p.add_argument("--dim", type=int, default=512, help="embedding width (ViT-B/32's is 512)")
    p.add_argument("--classes", type=int, default=1000, help="zero-shot and probe classes (ImageNet has 1,000); "
                   "the probe needs n >= classes / 0.3 for a stratified 70/30 split")
    p.add_argument("--probe-timeout", type=int, default=600, help="seconds one probe may take before it is "
                   "stopped (and reported as such)")
    p.add_argument("--seed", type=int, default=0, help="seed of the inputs, the sliced directions and the probe")
    p.add_argument("--timeout", type=int, default=900, help="seconds one step may take before it is stopped")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md",
                   help="the markdown file whose section this run writes")
    p.add_argument("--child", choices=sorted(STEPS), help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.child:
        print(json.dumps(run_child(args.child, args.n, args)))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    threshold = TransportConfig().max_exact_samples
    runs, growth = plan(args, threshold)
    start_load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    results = {(step, n): measure(step, n, args) for step, n in runs}
    loads = (start_load, "/".join(f"{x:.1f}" for x in os.getloadavg()))
    command = shlex.join([".venv/bin/python", "bench/scale_distance.py", *argv])
    section = render(results, growth, args, threshold, loads, command)
    update_section(args.out, HEADING, section)
    log.info("wrote %s\n%s", args.out, section)


if __name__ == "__main__":
    main()
