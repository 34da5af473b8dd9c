"""Prefect tasks of the dataset_distance flow; each calls one `pipelines.distance` function."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from clipline.pipelines.config import DatasetDistanceConfig
from clipline.pipelines.distance import embed, run
from clipline.pipelines.distance.compare import DistanceRow
from clipline.pipelines.distance.datasets import DatasetSample
from clipline.tasks.summaries import publish_summary


@task(name="plan_distances", cache_policy=NO_CACHE)
def plan_distances(config: DatasetDistanceConfig, run_id: str) -> run.DistancePlan:
    """Check shards, encoder, text model and output before anything is embedded."""
    plan = run.plan_distances(config, run_id)
    get_run_logger().info("%d datasets, spaces %s, output %s", len(plan.shards), ", ".join(config.spaces),
                          plan.output_uri)
    return plan


@task(name="draw_sample", cache_policy=NO_CACHE)
def draw_sample(name: str, spec: str, config: DatasetDistanceConfig) -> DatasetSample:
    """Index one dataset's shards and draw its seeded sample of items (and frames)."""
    return run.draw_sample(name, spec, config)


@task(name="embed_images", cache_policy=NO_CACHE)
def embed_images(plan: run.DistancePlan, samples: dict[str, DatasetSample],
                 config: DatasetDistanceConfig, run_id: str) -> dict:
    """CLIP image features of every dataset's drawn images or frames."""
    return embed.embed_image_space(plan.encoder, samples, config, run_id)


@task(name="embed_captions", cache_policy=NO_CACHE)
def embed_captions(samples: dict[str, DatasetSample], config: DatasetDistanceConfig):
    """fastText vectors of every dataset's drawn captions, in one space."""
    embeddings = embed.embed_text_space(samples, config)
    get_run_logger().info("caption space: %s%s", embeddings.model,
                          " (trained now: no --text-model)" if embeddings.trained else "")
    return embeddings


@task(name="compare_datasets", cache_policy=NO_CACHE)
def compare_datasets(points: dict, space: str, plan: run.DistancePlan, config: DatasetDistanceConfig,
                     run_id: str) -> tuple[list[DistanceRow], list[str]]:
    """W1 for every pair and the self baselines in one space; rows to the store, heatmaps to the output."""
    rows = run.compare_space(points, space, config)
    return rows, run.record_space(rows, list(points), space, plan, config, run_id)


@task(name="record_caption_words", cache_policy=NO_CACHE)
def record_caption_words(samples: dict[str, DatasetSample], config: DatasetDistanceConfig, run_id: str) -> dict:
    """The most frequent caption words per dataset, into the dataset_words table."""
    words = run.caption_words(samples, config.top_words)
    run.record_words(words, config, run_id)
    return words


def _words_markdown(words: dict) -> str:
    lines = ["| dataset | most frequent caption words (count) |", "| --- | --- |"]
    lines += [f"| {name} | {', '.join(f'{w} ({c})' for w, c, _ in ranked[:15])} |" for name, ranked in words.items()]
    return "\n".join(lines)


@task(name="publish_distances", cache_policy=NO_CACHE)
def publish_distances(rows: list[DistanceRow], words: dict, run_id: str) -> None:
    """A table artifact of every distance and a markdown artifact of the caption words."""
    create_table_artifact([{"space": r.space, "dataset_a": r.dataset_a, "dataset_b": r.dataset_b,
                            "method": r.method, "n": r.num_samples, "w1": round(r.value, 4),
                            "self_a": round(r.self_a, 4), "self_b": round(r.self_b, 4),
                            "excess": round(r.excess, 4), "ci_low": r.ci_low, "ci_high": r.ci_high}
                           for r in rows], key="dataset-distances",
                          description=f"Distance run {run_id}: `clipline sql --query distances`")
    publish_summary("distance-report", f"Distance run {run_id}", {
        f"{r.space}: {r.dataset_a} vs {r.dataset_b} (excess over self)": r.excess for r in rows
        if r.dataset_a != r.dataset_b}, "Raw W1 and baselines: `clipline sql --query distances`.")
    if words:
        create_markdown_artifact(_words_markdown(words), key="dataset-caption-words",
                                 description=f"Distance run {run_id}: `clipline sql --query top_words`")
