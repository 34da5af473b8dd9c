"""The `train_captioner` flow: shards + a CLIP checkpoint -> a ClipCap captioner checkpoint, on Ray Train."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from clipline.pipelines.config import CaptionerTrainConfig
from clipline.pipelines.store.runs import recorded_run
from clipline.tasks.train import fit_model, plan_training, publish_training_summary


@flow(name="train_captioner", validate_parameters=True)
def train_captioner(config: CaptionerTrainConfig) -> dict:
    """Train a ClipCap captioner (mapping network + GPT-2) on a frozen CLIP; resumable with resume='latest'."""
    plan = plan_training(config)
    with recorded_run("train_captioner", config, config.store, run_id=plan.resumed_run_id or flow_run.id) as run:
        summary = fit_model(config, plan, run.run_id)
        publish_training_summary(summary)
    return summary
