"""The `train_clip` flow: WebDataset shards -> a CLIP checkpoint, on Ray Train workers."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from clipline.pipelines.config import AnyTrainConfig
from clipline.pipelines.store.runs import recorded_run
from clipline.tasks.train import fit_model, plan_training, publish_training_summary


@flow(name="train_clip", validate_parameters=True)
def train_clip(config: AnyTrainConfig) -> dict:
    """Train a CLIP-style model or a CoCa (open_clip models and losses); resumable with resume='latest'."""
    plan = plan_training(config)
    with recorded_run("train_clip", config, config.store, run_id=plan.resumed_run_id or flow_run.id) as run:
        summary = fit_model(config, plan, run.run_id)
        publish_training_summary(summary)
    return summary
