"""`make bench-caption`: captioner training throughput against open_clip's trainer, and generation speed, on CPU.

Training, on the digit shards of `make bench-train` (.bench/train/shards), with
the same batch size, learning rate, warm-up, weight decay, AdamW betas, fp32,
one data-loader worker, resampled shards and number of steps:

- CoCa (`clipline-tiny-coca`, caption loss weight 2, contrastive 1):
  `clipline train --kind coca --workers 0` against open_clip's trainer
  (`open_clip_train.main --model clipline-tiny-coca --coca-*-loss-weight`,
  through tests/support/openclip_train.py, webdataset 0.2.86 first on PYTHONPATH);
- ClipCap (`clipline train-captioner --lm tiny --mapping mlp` on a frozen
  random-init clipline-tiny): no reference trainer installs offline, so its
  figure stands alone.

Steady samples/s leaves out the first --skip steps (open_clip's `Batch (t)`
windows from its log, clipline's `samples_per_s` windows from its store).

Generation: captions/s of the two trained checkpoints on --images held-out
digits, greedy and beam search (3 beams), batches of 50, at most 20 tokens.
The section goes to docs/benchmarks.md.

    python bench/caption.py [--steps 120] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import torch
from docs_section import machine_info, update_section, versions
from PIL import Image
from train import (
    CLIPLINE,
    OLD_WEBDATASET,
    OPENCLIP_WRAPPER,
    PYTHON,
    REPO,
    WORK,
    BenchError,
    ensure_shards,
    parse_clipline,
    parse_openclip,
    run_stamped,
)

log = logging.getLogger("bench.caption")
HEADING = "## Captioning (make bench-caption)"
COCA = "clipline-tiny-coca"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=120, help="optimizer steps of every training run")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--wd", type=float, default=0.2)
    p.add_argument("--log-every", type=int, default=10, help="steps per logged window")
    p.add_argument("--skip", type=int, default=20, help="first steps left out of the steady state")
    p.add_argument("--images", type=int, default=200, help="held-out digits captioned per decoding method")
    p.add_argument("--timeout", type=float, default=1800, help="seconds allowed per training run")
    p.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    args = p.parse_args(argv)
    if not 0 <= args.skip < args.steps - args.log_every:
        p.error("need 0 <= --skip < --steps - --log-every")
    return args


def _common(args) -> list[str]:
    return ["--batch-size", str(args.batch_size), "--lr", str(args.lr), "--warmup", str(args.warmup),
            "--beta1", "0.9", "--beta2", "0.98", "--eps", "1e-6", "--precision", "fp32", "--seed", "0"]


def openclip_coca(args, data: str, run: Path) -> tuple[list[str], dict[str, str]]:
    return [str(PYTHON), str(OPENCLIP_WRAPPER), "--train-data", data, "--dataset-type", "webdataset",
            "--dataset-resampled", "--train-num-samples", str(args.steps * args.batch_size), "--epochs", "1",
            "--model", COCA, "--coca-caption-loss-weight", "2.0", "--coca-contrastive-loss-weight", "1.0",
            "--wd", str(args.wd), "--workers", "1", "--device", "cpu", "--log-every-n-steps", str(args.log_every),
            "--logs", str(run), "--name", "run", "--report-to", "", *_common(args)], {"PYTHONPATH": str(OLD_WEBDATASET)}


def _clipline(args, run: Path) -> list[str]:
    return ["--out", str(REPO / run / "out"), "--results-uri", str(REPO / run / "results"),
            "--steps", str(args.steps), "--weight-decay", str(args.wd), "--workers", "0", "--data-workers", "1",
            "--resampled", "--log-every", str(args.log_every), "--checkpoint-every", str(args.steps), *_common(args)]


def clipline_coca(args, data: str, run: Path) -> tuple[list[str], dict[str, str]]:
    return [str(CLIPLINE), "train", "--kind", "coca", "--data", data, "--model", COCA, "--caption-weight", "2",
            "--contrastive-weight", "1", *_clipline(args, run)], {}


def clipline_clipcap(args, data: str, run: Path, clip: str) -> tuple[list[str], dict[str, str]]:
    return [str(CLIPLINE), "train-captioner", "--data", data, "--clip", clip, "--lm", "tiny", "--mapping", "mlp",
            "--prefix-length", "10", *_clipline(args, run)], {}


def random_clip(root: Path) -> str:
    """A random-init clipline-tiny checkpoint: ClipCap's frozen CLIP (its speed does not depend on the weights)."""
    from clipline.pipelines.models.registry import build_model
    from clipline.pipelines.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    built = build_model("clipline-tiny", augment=False)
    config = {"model_cfg": built.model_cfg, "preprocess_cfg": built.preprocess_cfg}
    return save_checkpoint(str(root / "clip"), 1, built.model, config, {"step": 1})


def steady_rate(windows, skip: int, batch: int) -> float:
    chosen = [w for w in windows if w.end_step - w.steps >= skip]
    seconds = sum(w.steps * w.step_s for w in chosen)
    if not chosen or seconds <= 0:
        raise BenchError(f"no logged window after step {skip}")
    return sum(w.steps for w in chosen) * batch / seconds


def train(name: str, command: tuple[list[str], dict[str, str]], run: Path, args) -> float:
    cmd, env = command
    log.info("%s: %s", name, " ".join(cmd))
    _, _, lines, _ = run_stamped(cmd, env, REPO / run / "output.log", args.timeout)
    windows, _ = parse_openclip(lines, args.batch_size) if "open_clip" in name else \
        parse_clipline(REPO / run / "results", args.batch_size)
    rate = steady_rate(windows, args.skip, args.batch_size)
    log.info("%s: %.1f samples/s", name, rate)
    return rate


def generation_rates(run: str, images: int) -> dict[str, float]:
    """captions/s of the run's last checkpoint, greedy and beam 3, on `images` held-out digits in batches of 50."""
    from clipline.pipelines.caption.captioner import load_captioner
    from clipline.pipelines.config import GenerateConfig
    from clipline.pipelines.train.checkpoint import committed_checkpoints
    from support.shards import digit_images

    captioner = load_captioner(committed_checkpoints(run)[-1], "cpu")  # the run's last checkpoint
    digits, _ = digit_images()
    pixels = torch.stack([captioner.preprocess(Image.fromarray(digits[4000 + i], "L").convert("RGB"))
                          for i in range(images)])
    rates = {}
    for method in ("greedy", "beam"):
        options = GenerateConfig(method=method, num_beams=3, max_length=20)
        start = time.perf_counter()
        for i in range(0, images, 50):
            captioner.generate(pixels[i:i + 50], options)
        rates[method] = images / (time.perf_counter() - start)
    return rates


def section(args, rates: dict[str, float], generation: dict[str, dict[str, float]], runs: dict[str, Path]) -> str:
    coca_ratio = rates["clipline CoCa"] / rates["open_clip CoCa"]
    return "\n".join([
        HEADING, "",
        f"Machine: {machine_info()}; load average {os.getloadavg()[0]:.1f} at the end. "
        f"Versions: {versions('torch', 'transformers', 'open_clip_torch')}.",
        f"Command: `python bench/caption.py --steps {args.steps} --batch-size {args.batch_size}` (CPU, fp32, "
        f"digit shards of `make bench-train`; steady state after step {args.skip}). Logs: "
        + ", ".join(f"{name}: `{run}/output.log`" for name, run in runs.items()) + ".", "",
        "| training run | samples/s | vs open_clip's trainer |", "| --- | --- | --- |",
        f"| open_clip trainer, CoCa `{COCA}` | {rates['open_clip CoCa']:.1f} | 1.00x |",
        f"| `clipline train --kind coca`, same model and settings | {rates['clipline CoCa']:.1f} | {coca_ratio:.2f}x |",
        f"| `clipline train-captioner` (ClipCap: mlp mapping, prefix 10, `--lm tiny`; frozen clipline-tiny) | "
        f"{rates['clipline ClipCap']:.1f} | no reference installs offline |", "",
        f"Generation on {args.images} held-out digits (batches of 50, at most 20 tokens), captions/s:", "",
        "| checkpoint | greedy | beam search, 3 beams |", "| --- | --- | --- |",
        *(f"| {name} (after the run above) | {r['greedy']:.1f} | {r['beam']:.1f} |" for name, r in generation.items())])


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    sys.path.insert(0, str(REPO / "tests"))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    runs = {name: WORK / "runs" / f"caption-{slug}-{stamp}" for name, slug in
            (("open_clip CoCa", "openclip-coca"), ("clipline CoCa", "coca"), ("clipline ClipCap", "clipcap"))}
    try:
        data = ensure_shards(20, 250)
        clip = random_clip(REPO / runs["clipline ClipCap"])
        commands = {"open_clip CoCa": openclip_coca(args, data, runs["open_clip CoCa"]),
                    "clipline CoCa": clipline_coca(args, data, runs["clipline CoCa"]),
                    "clipline ClipCap": clipline_clipcap(args, data, runs["clipline ClipCap"], clip)}
        rates = {name: train(name, command, runs[name], args) for name, command in commands.items()}
        generation = {name: generation_rates(str(REPO / runs[name] / "out"), args.images)
                      for name in ("clipline CoCa", "clipline ClipCap")}
    except BenchError as e:
        log.error("%s", e)
        return 1
    update_section(REPO / args.out, HEADING, section(args, rates, generation, runs))
    log.info("wrote the %r section of %s", HEADING, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
