"""The `caption_images` flow: a captioner checkpoint x shards -> a caption per sample in the store."""

from __future__ import annotations

from prefect import flow
from prefect.runtime import flow_run

from clipline.pipelines.config import CaptionConfig
from clipline.pipelines.store.runs import recorded_run
from clipline.tasks.caption import caption_images as caption_task
from clipline.tasks.caption import plan_captioning, publish_captions


@flow(name="caption_images", validate_parameters=True)
def caption_images(config: CaptionConfig) -> list[dict]:
    """Caption every image of the shards (greedy, beam or seeded nucleus decoding); rows in `predictions`."""
    plan = plan_captioning(config)
    with recorded_run("caption_images", config, config.store, run_id=flow_run.id) as run:
        captioned = caption_task(plan, config, run.run_id)
        return publish_captions(captioned, run.run_id)
