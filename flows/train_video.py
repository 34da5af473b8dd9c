"""The `train_video` flow: video shards -> a video-text checkpoint (CLIP towers + temporal head), on Ray Train."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from clipline.pipelines.config import VideoTrainConfig
from clipline.pipelines.store.runs import recorded_run
from clipline.tasks.train import fit_model, plan_training, publish_training_summary


@flow(name="train_video", validate_parameters=True)
def train_video(config: VideoTrainConfig) -> dict:
    """Train a video-text model (CLIP4Clip-style temporal head); resumable with resume='latest'."""
    plan = plan_training(config)
    with recorded_run("train_video", config, config.store, run_id=plan.resumed_run_id or flow_run.id) as run:
        summary = fit_model(config, plan, run.run_id)
        publish_training_summary(summary)
    return summary
