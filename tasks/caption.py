"""Prefect tasks of the caption flow; each calls one `pipelines.caption.runner` function."""

from __future__ import annotations

from dataclasses import asdict

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from clipline.pipelines.caption import runner
from clipline.pipelines.config import CaptionConfig

ARTIFACT_ROWS = 50  # captions shown in the run's table artifact; the store has them all


@task(name="plan_captioning", cache_policy=NO_CACHE)
def plan_captioning(config: CaptionConfig) -> runner.CaptionPlan:
    """Check the shards and that the checkpoint is a captioner before any model loads."""
    plan = runner.plan_captioning(config)
    get_run_logger().info("%s captioner, %d shard(s), %s samples, %s decoding", plan.kind, len(plan.shards),
                          plan.num_samples or "unknown", runner.decoding_label(config.generate))
    return plan


@task(name="caption_images", cache_policy=NO_CACHE)
def caption_images(plan: runner.CaptionPlan, config: CaptionConfig, run_id: str) -> list[runner.CaptionedSample]:
    """Generate a caption for every sample, in batches; each batch's rows go to the store's predictions."""
    return runner.caption_shards(plan, config, run_id)


@task(name="publish_captions", cache_policy=NO_CACHE)
def publish_captions(captioned: list[runner.CaptionedSample], run_id: str) -> list[dict]:
    """A table artifact of the first captions; returns every caption as a plain dict (the flow's value)."""
    rows = [asdict(c) for c in captioned]
    create_table_artifact([{**r, "references": " | ".join(r["references"])} for r in rows[:ARTIFACT_ROWS]],
                          key="captions", description=f"Captioning run {run_id}: `clipline sql \"SELECT key, "
                          "caption FROM predictions WHERE task = 'captioning'\"` has them all")
    return rows
