"""`make bench-curate`, second part: what CLIP-score filtering buys a model trained on noisy captions.

4,000 MNIST digits with templated captions ("the digit seven", ...), 30% of
them swapped to a wrong class. For each seed:

1. train the model on the noisy digits (the uncurated run);
2. score the noisy digits with that model and keep the top 70% by CLIP score
   (`clipline curate --clip-score-top-fraction 0.7`, clipline's own code);
3. train the same model, same seed, for the same number of samples seen on
   the curated shards;
4. zero-shot top-1 of both on 1,000 held-out digits (the three caption
   templates as a prompt ensemble).

The section goes to docs/benchmarks.md.

    python bench/curate_learning.py [--seeds 3] [--steps 400]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the digit shards of the tests
from docs_section import machine_info, update_section  # noqa: E402

from clipline.pipelines.config import CurateConfig, StoreConfig, TrainConfig  # noqa: E402
from clipline.pipelines.curate.run import curate  # noqa: E402
from clipline.pipelines.train.trainer import fit, plan_training  # noqa: E402
from support.curation import NOISE_MODEL  # noqa: E402
from support.shards import write_noisy_digit_shards  # noqa: E402
from support.zeroshot import digit_zero_shot_top1, held_out_digits  # noqa: E402

log = logging.getLogger("bench.curate_learning")
DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADING = "## Curation: the learning effect of CLIP-score filtering (`make bench-curate`)"
SHARDS, PER_SHARD, HELD_OUT = 10, 400, 1000  # training digits 0-3999, held-out 4000-4999


def train(data: str, out: Path, args, seed: int) -> str:
    config = TrainConfig(data=data, output_uri=str(out), model=args.model, steps=args.steps,
                         batch_size=args.batch_size, lr=args.lr, warmup=10, weight_decay=0.0, seed=seed, workers=0,
                         log_every=100, checkpoint_every=args.steps, data_workers=0, augment=False,
                         store=StoreConfig(results_uri=str(out.parent / "results")))
    return fit(config, plan_training(config), out.name)["checkpoint"]


def one_seed(root: Path, args, seed: int, held_out: tuple[list[bytes], np.ndarray]) -> dict:
    noisy = root / "noisy"
    swapped = write_noisy_digit_shards(noisy, SHARDS, PER_SHARD, args.swap)
    start = time.perf_counter()
    uncurated = train(str(noisy / f"{{00000..{SHARDS - 1:05d}}}.tar"), root / f"uncurated-{seed}", args, seed)
    result = curate(CurateConfig(data=str(noisy), output_uri=str(root / f"curated-{seed}"), scorer=uncurated,
                                 clip_score_top_fraction=1 - args.swap, scores_uri=str(root / f"scores-{seed}"),
                                 samples_per_shard=PER_SHARD, store=StoreConfig(results_uri=str(root / "results"))))
    kept = set(pq.read_table(root / f"curated-{seed}" / "kept_keys.parquet").column("key").to_pylist())
    curated = train(str(root / f"curated-{seed}"), root / f"curated-run-{seed}", args, seed)
    every = SHARDS * PER_SHARD
    row = {"seed": seed, "uncurated": digit_zero_shot_top1(uncurated, *held_out),
           "curated": digit_zero_shot_top1(curated, *held_out), "kept": result.kept,
           "swapped_removed": len(swapped - kept) / len(swapped),
           "clean_kept": (len(kept) - len(kept & swapped)) / (every - len(swapped)),
           "seconds": time.perf_counter() - start}
    log.info("seed %d: %s", seed, row)
    return row


def _mean_std(values: list[float]) -> str:
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values, ddof=1 if len(values) > 1 else 0):.1f}"


def section(rows: list[dict], args) -> str:
    per_seed = [f"| {r['seed']} | {100 * r['uncurated']:.1f} | {100 * r['curated']:.1f} | "
                f"{100 * (r['curated'] - r['uncurated']):+.1f} | {r['kept']:,} | {100 * r['swapped_removed']:.1f}% | "
                f"{100 * r['clean_kept']:.1f}% | {r['seconds']:.0f} s |" for r in rows]
    gain = [r["curated"] - r["uncurated"] for r in rows]
    return "\n".join([
        HEADING, "",
        f"Machine: {machine_info()}; load average {os.getloadavg()[0]:.1f} at the end.",
        f"Command: `python bench/curate_learning.py --seeds {args.seeds} --steps {args.steps} --batch-size "
        f"{args.batch_size} --lr {args.lr}` (model {Path(args.model).name}: a 2-layer ViT on 28 px digits).", "",
        f"Data: {SHARDS * PER_SHARD:,} MNIST digits with templated captions, {100 * args.swap:.0f}% swapped to a "
        f"wrong class. Each seed trains the model on them, CLIP-scores them with it and keeps the top "
        f"{100 * (1 - args.swap):.0f}% (`clipline curate`), then trains the same model with the same seed for "
        f"the same {args.steps * args.batch_size:,} samples seen on the curated shards. Zero-shot top-1 on "
        f"{HELD_OUT:,} held-out digits (prompt ensemble of the three caption templates), CPU.", "",
        "| seed | uncurated top-1 (%) | curated top-1 (%) | gain (points) | kept | swapped removed | clean kept "
        "| time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |", *per_seed, "",
        f"Mean ± std over {len(rows)} seeds: uncurated {_mean_std([r['uncurated'] for r in rows])}%, curated "
        f"{_mean_std([r['curated'] for r in rows])}%, gain {_mean_std(gain)} points (goal: at least 5)."])


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="training seeds (0, 1, ...)")
    parser.add_argument("--steps", type=int, default=400, help="optimizer steps of every run")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--swap", type=float, default=0.3, help="fraction of captions swapped to a wrong class")
    parser.add_argument("--model", default=str(NOISE_MODEL), help="open_clip JSON config or model name")
    args = parser.parse_args()
    held_out = held_out_digits(SHARDS * PER_SHARD, HELD_OUT)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [one_seed(Path(tmp), args, seed, held_out) for seed in range(args.seeds)]
    update_section(DOC, HEADING, section(rows, args))
    log.info("wrote %s", DOC)


if __name__ == "__main__":
    main()
