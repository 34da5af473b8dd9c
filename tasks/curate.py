"""Prefect tasks of the curate flow; each calls one `pipelines.curate.run` function."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from clipline.pipelines.config import CurateConfig
from clipline.pipelines.curate import run
from clipline.pipelines.curate.table import ScoreTable


@task(name="plan_curation", cache_policy=NO_CACHE)
def plan_curation(config: CurateConfig) -> run.CurationPlan:
    """Check shards, eval sets, scorer and output before any shard is scored."""
    plan = run.plan_curation(config)
    get_run_logger().info("%d shards, scorer %s", len(plan.shards), plan.scorer.ref.label if plan.scorer else "none")
    return plan


@task(name="score_samples", cache_policy=NO_CACHE)
def score_samples(plan: run.CurationPlan, config: CurateConfig) -> ScoreTable:
    """Every sample's scores (one Ray task per shard; stored scores reused), clusters and contamination."""
    return run.score(plan, config)


@task(name="apply_filters", cache_policy=NO_CACHE)
def apply_filters(table: ScoreTable, config: CurateConfig) -> run.Decision:
    """The intersection of the filters, each filter's funnel counts, and the kept samples' digest."""
    return run.decide(table, config)


@task(name="write_curated", cache_policy=NO_CACHE, retries=1)
def write_curated(decision: run.Decision, config: CurateConfig) -> list[str]:
    """Kept samples as new shards with sizes.json, plus kept_keys.parquet and scores.parquet."""
    return run.write_output(decision, config)


@task(name="record_curation", cache_policy=NO_CACHE)
def record_curation(decision: run.Decision, shards: list[str], plan: run.CurationPlan, config: CurateConfig,
                    run_id: str) -> run.CurationResult:
    """The run and its funnel into the store, and a table artifact of the funnel."""
    result = run.record(decision, shards, plan, config, run_id)
    create_table_artifact([{"filter": f["filter"], "rule": f["rule"], "removed alone": f["removed_alone"],
                            "removed beyond the others": f["removed_beyond_others"],
                            "remaining": f["remaining_after"]} for f in result.filters], key="curation-funnel",
                          description=f"Curation {run_id}: kept {result.kept} of {result.total}, digest "
                                      f"{result.digest[:12]} (`clipline sql --query curation_funnel`)")
    return result
