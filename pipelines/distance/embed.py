"""Points of the two embedding spaces: CLIP image features of the drawn images or frames, fastText caption vectors.

The image side uses evaluation's `load_encoder` + `embed_images`, so a point
here is exactly the feature an evaluation scores. With `workers` > 0 each
dataset is embedded by a Ray task that loads the encoder itself and gets its
share of the CPUs as torch threads; only the (n, d) arrays come back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import ray
from tqdm import tqdm

from clipline.pipelines.compute import cpus_per_worker, current_node, ensure_ray
from clipline.pipelines.config import DatasetDistanceConfig
from clipline.pipelines.distance.datasets import DatasetSample, read_members
from clipline.pipelines.distance.text import CaptionEmbeddings, embed_captions
from clipline.pipelines.eval.checkpoints import CheckpointRef
from clipline.pipelines.eval.features import Encoder, embed_images, load_encoder, torch_threads
from clipline.pipelines.store.writer import ResultsWriter, now

log = logging.getLogger(__name__)

EMBED_TASK_RETRIES = 1


def embed_sample_images(encoder: Encoder, sample: DatasetSample, batch_size: int) -> np.ndarray:
    """(number of images picked, d) unit vectors of one dataset's drawn images or frames."""
    refs = sample.image_refs()
    images = tqdm(read_members(refs), total=len(refs), desc=f"embed {sample.name}", unit="img", mininterval=2,
                  disable=None)
    return embed_images(encoder, images, batch_size)


def record_embedding(points: np.ndarray, name: str, config: DatasetDistanceConfig, run_id: str | None) -> np.ndarray:
    """One `dataset_embeddings` row saying where (which node) a dataset was embedded; the points unchanged."""
    if run_id is not None:
        with ResultsWriter(config.store) as results:
            results.append("dataset_embeddings", [{
                "run_id": run_id, "dataset": name, "space": "clip_image", "num_points": len(points),
                "dim": points.shape[1] if points.ndim == 2 else 0, "node": current_node(), "time": now()}])
    return points


@ray.remote(max_retries=EMBED_TASK_RETRIES)
def _embed_task(ref: CheckpointRef, sample: DatasetSample, config: DatasetDistanceConfig, threads: int,
                run_id: str | None) -> np.ndarray:
    logging.basicConfig(level=logging.INFO)
    with torch_threads(threads):
        points = embed_sample_images(load_encoder(ref, gpu=config.gpu), sample, config.batch_size)
    return record_embedding(points, sample.name, config, run_id)


def embed_image_space(ref: CheckpointRef, samples: Mapping[str, DatasetSample], config: DatasetDistanceConfig,
                      run_id: str | None = None) -> dict[str, np.ndarray]:
    """Every dataset's image points, in this process or as Ray tasks (`config.workers` at once); with a
    `run_id`, each dataset's embedding is recorded in `dataset_embeddings`."""
    if config.workers == 0:
        encoder = load_encoder(ref, gpu=config.gpu)
        return {name: record_embedding(embed_sample_images(encoder, sample, config.batch_size), name, config, run_id)
                for name, sample in samples.items()}
    ensure_ray()
    threads = cpus_per_worker(config.workers)
    log.info("embedding %d datasets on Ray, %d at once with %d CPU(s) each", len(samples), config.workers, threads)
    options = {"num_cpus": threads, "num_gpus": 1 if config.gpu else 0}
    names, pending, running, done = list(samples), list(samples), {}, {}
    while pending or running:
        while pending and len(running) < config.workers:
            name = pending.pop(0)
            task = _embed_task.options(**options).remote(ref, samples[name], config, threads, run_id)
            running[task] = name
        ready, _ = ray.wait(list(running), num_returns=1)
        for task in ready:
            done[running.pop(task)] = ray.get(task)
    return {name: done[name] for name in names}


def embed_text_space(samples: Mapping[str, DatasetSample], config: DatasetDistanceConfig) -> CaptionEmbeddings:
    """Every dataset's caption vectors in one fastText space (a given model, or one trained on all captions)."""
    return embed_captions({name: sample.captions for name, sample in samples.items()}, config.distance.fasttext)
