"""The `ingest_images` flow: URL list -> WebDataset shards, with a status row for every input."""

from __future__ import annotations

import time

from prefect import flow
from prefect.runtime import flow_run

from clipline.pipelines.config import IngestConfig
from clipline.pipelines.crawl.images import ImageDecoder
from clipline.pipelines.store.runs import recorded_run
from clipline.tasks.crawl import check_locations, crawl_shards, plan_shards, publish_ingest_summary, write_dataset_index


@flow(name="ingest_images", validate_parameters=True)
def ingest_images(config: IngestConfig) -> dict:
    """Crawl an image-text URL list into WebDataset shards (resumable; committed shards are skipped)."""
    check_locations(config)
    with recorded_run("ingest_images", config, config.store, run_id=flow_run.id) as run:
        started = time.monotonic()
        plan = plan_shards(config.reader)
        results = crawl_shards(plan, config, ImageDecoder(config.image), run.run_id)
        summary = write_dataset_index(config, results, time.monotonic() - started)
        publish_ingest_summary(summary)
    return summary
