"""A dataset-distance run, step by step: check, draw, embed, compare, record.

`plan_distances` checks every input before any image is read (shards exist,
the encoder resolves, the text model exists, the output is writable). Each
embedding space then gets the full matrix of W1 distances with split-half self
baselines (`compare.pairwise_distances`); `record_space` writes its rows to
the `dataset_distances` table and two heatmaps (raw W1, excess over the self
baselines), and `record_words` the most frequent caption words per dataset.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from clipline.pipelines import storage
from clipline.pipelines.config import DatasetDistanceConfig
from clipline.pipelines.distance import datasets
from clipline.pipelines.distance.compare import DistanceRow, distance_matrix, pairwise_distances
from clipline.pipelines.distance.datasets import DatasetSample
from clipline.pipelines.distance.heatmap import write_heatmap
from clipline.pipelines.distance.text import english_stop_words, top_words
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.eval.checkpoints import CheckpointRef, resolve_checkpoint
from clipline.pipelines.store.writer import ResultsWriter, now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistancePlan:
    shards: dict[str, str]  # dataset name -> shard spec (checked)
    encoder: CheckpointRef | None  # None: no clip_image space
    output_uri: str


def default_output_uri(results_uri: str, run_id: str) -> str:
    """distances/RUN_ID beside the results store."""
    parent = results_uri.rstrip("/").rsplit("/", 1)[0]
    return storage.join(parent, "distances", run_id)


def plan_distances(config: DatasetDistanceConfig, run_id: str) -> DistancePlan:
    """Check every input and the output location; nothing is embedded yet."""
    shards = config.named_datasets()
    for spec in shards.values():
        datasets.shard_uris(spec)  # raises naming the missing shards
    encoder = resolve_checkpoint(config.image_encoder, config.pretrained) if "clip_image" in config.spaces else None
    text_model = config.distance.fasttext.model_uri
    if "fasttext_text" in config.spaces and text_model and not storage.exists(text_model):
        raise ClipLineError(f"--text-model {text_model} does not exist",
                            "give a fastText .bin or .vec file, or leave it out to train one on the captions")
    output = config.output_uri or default_output_uri(config.store.results_uri, run_id)
    storage.check_writable(output)
    return DistancePlan(shards, encoder, output)


def draw_sample(name: str, spec: str, config: DatasetDistanceConfig) -> DatasetSample:
    """Index one dataset and draw its seeded sample."""
    items = datasets.index_dataset(name, spec)
    sample = datasets.draw(name, items, config.samples, config.frames_per_video, config.distance.seed)
    log.info("dataset %s: %d of %d items, %d images", name, len(sample.items), sample.available,
             len(sample.image_refs()))
    return sample


def compare_space(points: Mapping[str, np.ndarray], space: str, config: DatasetDistanceConfig) -> list[DistanceRow]:
    """W1 for every pair and each self baseline, at one n for all (compare.py)."""
    return pairwise_distances(points, space, config.distance)


def record_space(rows: list[DistanceRow], names: list[str], space: str, plan: DistancePlan,
                 config: DatasetDistanceConfig, run_id: str) -> list[str]:
    """Write the rows to the store and the space's two heatmaps; return the heatmap URIs."""
    time = now()
    with ResultsWriter(config.store) as writer:
        writer.append("dataset_distances", [{**row.table_record(), "self_a": row.self_a, "self_b": row.self_b,
                                             "excess": row.excess, "not_optimal": row.not_optimal, "reg": row.reg,
                                             "run_id": run_id, "time": time} for row in rows])
    n = rows[0].num_samples
    return [
        write_heatmap(storage.join(plan.output_uri, f"{space}_w1.png"), distance_matrix(rows, names), names,
                      f"{space}: W1 at n = {n} (diagonal: split-half self distance)"),
        write_heatmap(storage.join(plan.output_uri, f"{space}_excess.png"), distance_matrix(rows, names, "excess"),
                      names, f"{space}: W1 minus the mean self distance", label="excess W1"),
    ]


def caption_words(samples: Mapping[str, DatasetSample], k: int) -> dict[str, list[tuple[str, int, float]]]:
    """Per dataset: (word, count, share of its non-stop-word tokens) of the k most frequent caption words."""
    stop = english_stop_words()
    words = {}
    for name, sample in samples.items():
        everything = top_words(sample.captions, k=None, stop_words=stop)
        total = sum(count for _, count in everything) or 1
        words[name] = [(word, count, count / total) for word, count in everything[:k]]
    return words


def record_words(words: Mapping[str, list[tuple[str, int, float]]], config: DatasetDistanceConfig,
                 run_id: str) -> None:
    time = now()
    with ResultsWriter(config.store) as writer:
        writer.append("dataset_words", [
            {"run_id": run_id, "dataset": name, "rank": rank, "word": word, "count": count, "share": share,
             "time": time}
            for name, ranked in words.items() for rank, (word, count, share) in enumerate(ranked, start=1)])
