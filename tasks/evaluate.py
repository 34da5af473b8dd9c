"""Prefect tasks of the evaluate flow; each calls one `pipelines.eval` function."""

from __future__ import annotations

from dataclasses import asdict

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from clipline.pipelines.config import EvalConfig
from clipline.pipelines.eval import runner
from clipline.pipelines.eval.results import EvalResult
from clipline.tasks.summaries import publish_summary


@task(name="plan_evaluation", cache_policy=NO_CACHE)
def plan_evaluation(config: EvalConfig) -> runner.EvalPlan:
    """Load every checkpoint and check every dataset before any image is embedded."""
    plan = runner.plan_evaluation(config)
    get_run_logger().info("%d (checkpoint, dataset) pair(s), tasks %s, strategies %s", len(plan.jobs),
                          ", ".join(config.tasks), ", ".join(config.strategies()))
    return plan


@task(name="evaluate_pairs", cache_policy=NO_CACHE)
def evaluate_pairs(plan: runner.EvalPlan, config: EvalConfig, run_id: str) -> list[EvalResult]:
    """Every task on every pair, one image feature pass per pair (on Ray workers when workers > 0)."""
    return runner.evaluate_all(plan, config, run_id)


HEADLINE_METRICS = ("acc1", "image_retrieval_recall@1", "text_retrieval_recall@1", "cider")


def result_rows(results: list[EvalResult]) -> list[dict]:
    """One row per metric: the long format reads well whatever mix of tasks ran."""
    return [{"checkpoint": r.checkpoint, "dataset": r.dataset, "task": r.task, "strategy": r.strategy or "",
             "metric": name, "value": round(value, 6)} for r in results for name, value in r.metrics.items()]


@task(name="publish_eval_results", cache_policy=NO_CACHE)
def publish_eval_results(results: list[EvalResult], run_id: str) -> list[dict]:
    """A table artifact of every metric; returns the results as plain dicts (the flow's return value)."""
    create_table_artifact(result_rows(results), key="evaluation-results",
                          description=f"Evaluation run {run_id}: `clipline sql --query leaderboard` compares runs")
    publish_summary("evaluation-report", f"Evaluation run {run_id}", {
        f"{r.dataset} {r.task} {r.strategy or ''} {name}".replace("  ", " "): value
        for r in results for name, value in r.metrics.items() if name in HEADLINE_METRICS},
        "All metrics: `clipline sql --query leaderboard`; `--query per_class_accuracy`, `--query confusion`.")
    return [asdict(r) for r in results]
