"""The `ingest_videos` flow: video-text URL list -> WebDataset shards of sampled frames, a status row per input.

The same tasks as `ingest_images` (sharding, resume, retries, results store, progress, artifacts); only the
decoder differs (pipelines.crawl.videos.VideoDecoder).
"""

from __future__ import annotations

import time

from prefect import flow
from prefect.runtime import flow_run

from clipline.pipelines.config import VideoIngestConfig
from clipline.pipelines.crawl.videos import VideoDecoder
from clipline.pipelines.store.runs import recorded_run
from clipline.tasks.crawl import check_locations, crawl_shards, plan_shards, publish_ingest_summary, write_dataset_index


@flow(name="ingest_videos", validate_parameters=True)
def ingest_videos(config: VideoIngestConfig) -> dict:
    """Crawl a video-text URL list into shards of sampled frames (resumable; committed shards are skipped)."""
    check_locations(config)
    with recorded_run("ingest_videos", config, config.store, run_id=flow_run.id) as run:
        started = time.monotonic()
        plan = plan_shards(config.reader)
        results = crawl_shards(plan, config, VideoDecoder(config.video, config.image), run.run_id)
        summary = write_dataset_index(config, results, time.monotonic() - started)
        publish_ingest_summary(summary)
    return summary
