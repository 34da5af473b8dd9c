"""Prefect tasks of the training flows; each calls one `pipelines.train` function."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from clipline.pipelines.config import TrainConfig
from clipline.pipelines.train import trainer
from clipline.tasks.summaries import publish_summary

log = logging.getLogger(__name__)


@task(name="plan_training", cache_policy=NO_CACHE)
def plan_training(config: TrainConfig) -> trainer.TrainPlan:
    """Check shards, run location and checkpoints, and count the steps, before any worker starts."""
    plan = trainer.plan_training(config)
    get_run_logger().info("%d steps over %d shards (%s samples)", plan.total_steps, plan.num_shards,
                          plan.dataset_size or "unknown")
    return plan


PROGRESS_POLL_S = 10


@contextlib.contextmanager
def _progress_artifact(config: TrainConfig, plan: trainer.TrainPlan, run_id: str) -> Iterator[None]:
    """A Prefect progress artifact of the steps done, read from the metrics the workers write to the store."""
    artifact = create_progress_artifact(0.0, key="training-progress", description=f"Training run {run_id}: steps")
    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(PROGRESS_POLL_S):
            try:
                update_progress_artifact(artifact, 100.0 * trainer.steps_done(config, run_id) / plan.total_steps)
            except Exception as e:  # noqa: BLE001 - progress is best effort; training goes on regardless
                log.debug("progress artifact not updated: %s", e)

    thread = threading.Thread(target=poll, name="training-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        update_progress_artifact(artifact, 100.0 * trainer.steps_done(config, run_id) / plan.total_steps)


@task(name="fit_model", cache_policy=NO_CACHE)
def fit_model(config: TrainConfig, plan: trainer.TrainPlan, run_id: str) -> dict:
    """Train on Ray Train workers (recovering from worker failures); return the run's final figures."""
    with _progress_artifact(config, plan, run_id):
        return trainer.fit(config, plan, run_id)


@task(name="publish_training_summary", cache_policy=NO_CACHE)
def publish_training_summary(summary: dict) -> None:
    """A table artifact with the run's final figures."""
    create_table_artifact([{"metric": k, "value": v} for k, v in summary.items()], key="training-summary",
                          description=f"Training run {summary['run_id']}")
    publish_summary("training-report", f"Training run {summary['run_id']}", summary,
                    "Curves: `clipline sql \"SELECT step, value FROM train_metrics WHERE name = 'loss'\"`; "
                    "`clipline report` draws them.")
