"""The `curate` flow: shards -> per-sample scores -> filters, dedup, decontamination -> curated shards."""

from __future__ import annotations

from dataclasses import asdict

from prefect import flow
from prefect.runtime import flow_run

from clipline.pipelines.config import CurateConfig
from clipline.pipelines.store.runs import recorded_run
from clipline.tasks.curate import apply_filters, plan_curation, record_curation, score_samples, write_curated


@flow(name="curate", validate_parameters=True)
def curate(config: CurateConfig) -> dict:
    """Score every sample once, keep the intersection of the filters, write the kept samples as new shards."""
    run_id = flow_run.id or "local"
    plan = plan_curation(config)
    with recorded_run("curate", config, config.store, run_id=run_id) as run:
        decision = apply_filters(score_samples(plan, config), config)
        shards = write_curated(decision, config)
        result = record_curation(decision, shards, plan, config, run.run_id)
    return asdict(result)
