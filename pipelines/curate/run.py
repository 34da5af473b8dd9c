"""A curation run, stage by stage: plan (every check before work), score, decide, write, record.

The flow calls these one task each; `curate` runs them all in one process
(tests, benchmarks, the pipeline's library use).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

import numpy as np

from clipline.pipelines import storage
from clipline.pipelines.config.curate import CurateConfig
from clipline.pipelines.curate import output
from clipline.pipelines.curate.cluster import add_clusters
from clipline.pipelines.curate.contamination import add_contamination, eval_images
from clipline.pipelines.curate.distribute import score_shards
from clipline.pipelines.curate.filters import FilterOutcome, active_filters, apply_filters, refuse_caption_filters
from clipline.pipelines.curate.scorer import ScorerSpec, load_scorer, resolve_scorer
from clipline.pipelines.curate.table import ScoreTable, build_table
from clipline.pipelines.data.loader import shard_uris
from clipline.pipelines.shard_format import index_tar
from clipline.pipelines.store.writer import ResultsWriter, now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CurationPlan:
    shards: list[str]
    eval_shards: dict[str, list[str]]  # eval dataset name -> its shards
    scorer: ScorerSpec | None


@dataclass(frozen=True)
class Decision:
    table: ScoreTable
    kept: np.ndarray
    outcomes: list[FilterOutcome]
    digest: str


@dataclass(frozen=True)
class CurationResult:
    run_id: str
    output_uri: str
    total: int
    kept: int
    digest: str
    shards: list[str]
    filters: list[dict] = field(default_factory=list)


def _check_captions(config: CurateConfig, shards: list[str]) -> None:
    """Refuse caption filters on shards without captions, from the first shard's index (no image is read)."""
    needs_captions = any(f.needs_captions for f in active_filters(config))
    if needs_captions and not any(sample.caption for sample in index_tar(shards[0])):
        refuse_caption_filters(config, f"shard {shards[0]}")


def plan_curation(config: CurateConfig) -> CurationPlan:
    """Shards, eval sets, scorer and output checked before any shard is scored."""
    shards = shard_uris(config.data)
    evals = {name: shard_uris(spec) for name, spec in config.eval_datasets().items()}
    _check_captions(config, shards)
    scorer = None
    if config.scorer:
        scorer = resolve_scorer(config.scorer, config.pretrained)
        load_scorer(scorer)  # a broken or mismatched checkpoint fails here, not in a Ray task
    storage.check_writable(config.output_uri)
    log.info("curating %d shards%s", len(shards), f", decontaminating against {', '.join(evals)}" if evals else "")
    return CurationPlan(shards, evals, scorer)


def score(plan: CurationPlan, config: CurateConfig) -> ScoreTable:
    """Every sample's scores (stored ones reused), clusters and contamination added."""
    per_shard = score_shards(plan.shards, config.scores_uri, plan.scorer, config.batch_size, config.workers,
                             config.gpu)
    table = add_clusters(build_table(per_shard), config.num_clusters, config.seed)
    if plan.eval_shards:
        evals = {name: build_table(score_shards(shards, config.scores_uri, plan.scorer, config.batch_size,
                                                config.workers, config.gpu))
                 for name, shards in plan.eval_shards.items()}
        table = add_contamination(table, eval_images(evals))
    return table


def decide(table: ScoreTable, config: CurateConfig) -> Decision:
    kept, outcomes = apply_filters(table, config)
    digest = output.content_digest(table, kept)
    log.info("kept %d of %d samples (digest %s)", int(kept.sum()), len(table), digest[:12])
    return Decision(table, kept, outcomes, digest)


def write_output(decision: Decision, config: CurateConfig) -> list[str]:
    """Curated shards + sizes.json, kept_keys.parquet and scores.parquet in the output folder."""
    shards = output.write_shards(config.output_uri, decision.table, decision.kept, config.samples_per_shard)
    output.write_scores(config.output_uri, decision.table, decision.outcomes)
    output.write_kept_keys(config.output_uri, decision.table, decision.kept, decision.digest)  # last: it marks done
    return shards


def record(decision: Decision, shards: list[str], plan: CurationPlan, config: CurateConfig,
           run_id: str) -> CurationResult:
    """The run's row and one row per filter into the store."""
    total, kept, time = len(decision.table), int(decision.kept.sum()), now()
    filters = [{"run_id": run_id, "position": i, "filter": o.name, "rule": o.rule, "removed_alone": o.removed_alone,
                "removed_beyond_others": o.removed_beyond_others, "remaining_after": o.remaining_after,
                "total": total, "time": time} for i, o in enumerate(decision.outcomes, start=1)]
    with ResultsWriter(config.store) as writer:
        writer.append("curation_runs", [{
            "run_id": run_id, "data": config.data, "output_uri": config.output_uri,
            "scorer": plan.scorer.ref.label if plan.scorer else None, "total": total, "kept": kept,
            "num_shards": len(shards), "digest": decision.digest, "time": time}])
        writer.append("curation_filters", filters)
    return CurationResult(run_id, config.output_uri, total, kept, decision.digest, shards,
                          [{k: v for k, v in row.items() if k not in ("run_id", "time")} for row in filters])


def curate(config: CurateConfig, run_id: str | None = None) -> CurationResult:
    """The whole run in this process."""
    run_id = run_id or uuid.uuid4().hex
    plan = plan_curation(config)
    decision = decide(score(plan, config), config)
    return record(decision, write_output(decision, config), plan, config, run_id)
