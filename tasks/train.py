"""Prefect tasks of the training flows; each calls one `pipelines.train` function."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from pipelines.config import TrainConfig
from pipelines.train import trainer
from tasks.summaries import publish_summary


@task(name="plan_training", cache_policy=NO_CACHE)
def plan_training(config: TrainConfig) -> trainer.TrainPlan:
    """Check shards, run location and checkpoints, and count the steps, before any worker starts."""
    plan = trainer.plan_training(config)
    get_run_logger().info("%d steps over %d shards (%s samples)", plan.total_steps, plan.num_shards,
                          plan.dataset_size or "unknown")
    return plan


@task(name="fit_model", cache_policy=NO_CACHE)
def fit_model(config: TrainConfig, plan: trainer.TrainPlan, run_id: str) -> dict:
    """Train on Ray Train workers (recovering from worker failures); return the run's final figures."""
    return trainer.fit(config, plan, run_id)


@task(name="publish_training_summary", cache_policy=NO_CACHE)
def publish_training_summary(summary: dict) -> None:
    """A table artifact with the run's final figures."""
    create_table_artifact([{"metric": k, "value": v} for k, v in summary.items()], key="training-summary",
                          description=f"Training run {summary['run_id']}")
    publish_summary("training-report", f"Training run {summary['run_id']}", summary,
                    "Curves: `clipline sql \"SELECT step, value FROM train_metrics WHERE name = 'loss'\"`; "
                    "`clipline report` draws them.")
