"""The `dataset_distance` flow: datasets -> Wasserstein-1 distances in CLIP image and fastText caption spaces."""

from __future__ import annotations

from dataclasses import asdict

from prefect import flow
from prefect.runtime import flow_run

from clipline.pipelines.config import DatasetDistanceConfig
from clipline.pipelines.store.runs import recorded_run
from clipline.tasks.distance import (
    compare_datasets,
    draw_sample,
    embed_captions,
    embed_images,
    plan_distances,
    publish_distances,
    record_caption_words,
)


@flow(name="dataset_distance", validate_parameters=True)
def dataset_distance(config: DatasetDistanceConfig) -> dict:
    """W1 between every pair of datasets, with split-half self baselines, per embedding space."""
    run_id = flow_run.id or "local"
    plan = plan_distances(config, run_id)
    with recorded_run("dataset_distance", config, config.store, run_id=run_id) as run:
        drawn = [draw_sample.submit(name, spec, config) for name, spec in plan.shards.items()]
        samples = {future.result().name: future.result() for future in drawn}
        points, text_model = {}, None
        if plan.encoder:
            points["clip_image"] = embed_images(plan, samples, config, run.run_id)
        if "fasttext_text" in config.spaces:
            captions = embed_captions(samples, config)
            points["fasttext_text"] = {name: c.vectors for name, c in captions.datasets.items()}
            text_model = {"model": captions.model, "trained": captions.trained}
        rows, heatmaps = [], []
        for space, embedded in points.items():
            space_rows, space_heatmaps = compare_datasets(embedded, space, plan, config, run.run_id)
            rows += space_rows
            heatmaps += space_heatmaps
        words = record_caption_words(samples, config, run.run_id) if config.top_words else {}
        publish_distances(rows, words, run.run_id)
    return {"run_id": run.run_id, "output_uri": plan.output_uri, "heatmaps": heatmaps, "text_model": text_model,
            "samples": {name: {"items": len(s.items), "available": s.available, "images": len(s.image_refs())}
                        for name, s in samples.items()},
            "distances": [asdict(row) for row in rows], "top_words": words}
