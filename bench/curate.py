"""`make bench-curate`: CLIP-scoring throughput of `clipline curate` against a plain open_clip loop, same shards.

clip-retrieval's `inference` (what LAION users embed datasets with) is not in
the package registries this machine reaches, so the reference is the loop a
user would write with open_clip alone: read the tar, decode, preprocess, embed
image and caption, cosine. clipline's figure includes everything its scoring
does per sample on top (pHash, sha256, sizes, the stored scores file), so it
is an upper bound on its overhead. Both run in this process, one after the
other, on CPU; the section goes to docs/benchmarks.md.

    python bench/curate.py [--samples 2048] [--models clipline-tiny ViT-B-32]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the digit shards of the tests
from docs_section import machine_info, update_section  # noqa: E402

from clipline.pipelines.curate.scorer import load_scorer, resolve_scorer  # noqa: E402
from clipline.pipelines.curate.scores import stored_scores  # noqa: E402
from clipline.pipelines.models.registry import build_model  # noqa: E402
from clipline.pipelines.shard_format import read_samples  # noqa: E402
from clipline.pipelines.train.checkpoint import save_checkpoint  # noqa: E402
from support.shards import write_digit_shards  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADING = "## Curation: CLIP-scoring throughput (`make bench-curate`)"
PER_SHARD = 512


def _checkpoint(model: str, root: Path) -> str:
    torch.manual_seed(0)
    built = build_model(model, augment=False)  # random init: throughput does not depend on the weights
    config = {"model_cfg": built.model_cfg, "preprocess_cfg": built.preprocess_cfg}
    return save_checkpoint(str(root / model), 1, built.model, config, {"step": 1})


def clipline_rate(shards: list[str], checkpoint: str, root: Path, batch_size: int) -> float:
    scorer = resolve_scorer(checkpoint, None)
    scores_uri = tempfile.mkdtemp(dir=root)  # empty: every shard is scored, none read back
    encoder = load_scorer(scorer)
    start = time.perf_counter()
    n = sum(stored_scores(uri, scores_uri, scorer, batch_size, encoder=encoder).num_rows for uri in shards)
    return n / (time.perf_counter() - start)


@torch.inference_mode()
def open_clip_rate(shards: list[str], model: str, batch_size: int) -> float:
    built = build_model(model, augment=False)
    built.model.eval()
    start, n = time.perf_counter(), 0
    for uri in shards:
        samples = list(read_samples(uri).values())
        for i in range(0, len(samples), batch_size):
            batch = samples[i:i + batch_size]
            pixels = torch.stack([built.preprocess_val(Image.open(io.BytesIO(s["png"])).convert("RGB"))
                                  for s in batch])
            tokens = built.tokenizer([s["txt"].decode() for s in batch])
            image = F.normalize(built.model.encode_image(pixels), dim=-1)
            text = F.normalize(built.model.encode_text(tokens), dim=-1)
            np.asarray((image * text).sum(-1))
            n += len(batch)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--models", nargs="+", default=["clipline-tiny", "ViT-B-32"])
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shards = write_digit_shards(root / "data", max(1, args.samples // PER_SHARD), PER_SHARD)
        rows = []
        for model in args.models:
            ours = clipline_rate(shards, _checkpoint(model, root), root, args.batch_size)
            plain = open_clip_rate(shards, model, args.batch_size)
            rows.append(f"| {model} | {ours:.0f} | {plain:.0f} | {ours / plain:.2f}x |")
            print(rows[-1], flush=True)
    load = os.getloadavg()[0]
    section = "\n".join([
        HEADING, "",
        f"Machine: {machine_info()}; load average {load:.1f} when it ran (other work shares the CPUs).",
        f"Command: `python bench/curate.py --samples {args.samples} --models {' '.join(args.models)}` "
        f"({len(shards) * PER_SHARD} MNIST digits as PNG, 28 px; batch {args.batch_size}; random-init weights; CPU).",
        "Reference: a plain open_clip loop (decode, preprocess, embed image and caption, cosine); clip-retrieval "
        "is not installable offline here. clipline's figure also computes pHash, sha256 and sizes, and writes "
        "the stored scores.", "",
        "| model | clipline curate scoring (images/s) | plain open_clip loop (images/s) | ratio |",
        "| --- | --- | --- | --- |", *rows])
    update_section(DOC, HEADING, section)


if __name__ == "__main__":
    main()
