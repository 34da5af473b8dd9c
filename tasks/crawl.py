"""Prefect tasks of the image and video ingest flows; each calls one `pipelines.crawl` function."""

from __future__ import annotations

import time

from prefect import get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from tqdm import tqdm

from clipline.pipelines import storage
from clipline.pipelines.config import IngestConfig, ReaderConfig
from clipline.pipelines.crawl import distribute, reader, writer
from clipline.pipelines.crawl.reader import ShardPlan
from clipline.pipelines.crawl.sample import SampleDecoder
from clipline.pipelines.crawl.shard import ShardResult
from clipline.tasks.summaries import publish_summary

ARTIFACT_EVERY_S = 5.0  # progress artifact updates go to the API; the terminal bar updates faster


@task(name="check_locations", cache_policy=NO_CACHE)
def check_locations(config: IngestConfig) -> None:
    """Fail before any work if the input is missing or an output is not writable."""
    reader.input_files(config.reader)
    storage.check_writable(config.output_uri)
    storage.check_writable(config.store.results_uri)


@task(name="plan_shards", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def plan_shards(config: ReaderConfig) -> ShardPlan:
    """Read the URL list once, streaming: check every file and count its rows and shards."""
    plan = reader.plan_shards(config)
    get_run_logger().info("%d URLs: %d shard(s) of up to %d", plan.num_rows, plan.num_shards,
                          config.samples_per_shard)
    return plan


class _Progress:
    """A terminal progress bar plus a Prefect progress artifact, fed (done, successes) deltas."""

    def __init__(self, total: int, unit: str):
        self.bar = tqdm(total=total, unit=unit, dynamic_ncols=True, smoothing=0.1)
        self.total, self.done, self.ok = total, 0, 0
        self.artifact = create_progress_artifact(0.0, description=f"{unit}s processed")
        self._artifact_at = time.monotonic()

    def __call__(self, done: int, ok: int) -> None:
        self.done, self.ok = self.done + done, self.ok + ok
        self.bar.update(done)
        self.bar.set_postfix(ok=self.ok, failed=self.done - self.ok, refresh=False)
        if time.monotonic() - self._artifact_at > ARTIFACT_EVERY_S or self.done >= self.total:
            update_progress_artifact(self.artifact, 100.0 * self.done / max(self.total, 1))
            self._artifact_at = time.monotonic()

    def close(self) -> None:
        update_progress_artifact(self.artifact, 100.0 * self.done / max(self.total, 1))
        self.bar.close()


@task(name="crawl_shards", cache_policy=NO_CACHE)
def crawl_shards(plan: ShardPlan, config: IngestConfig, decode: SampleDecoder, run_id: str) -> list[ShardResult]:
    """Crawl shards on Ray workers as the URL list streams in, with a progress bar; committed shards are skipped."""
    progress = _Progress(plan.num_rows, unit="sample")
    shards = reader.split_shards(reader.read_batches(config.reader), config.reader.samples_per_shard)
    try:
        return distribute.crawl_shards(shards, config, decode, run_id, progress)
    finally:
        progress.close()


@task(name="write_dataset_index", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def write_dataset_index(config: IngestConfig, results: list[ShardResult], duration_s: float) -> dict:
    """Write sizes.json for open_clip's trainer and return the ingest summary."""
    writer.write_sizes(config.output_uri, {r.shard_id: r.stats["successes"] for r in results})
    return summarize(config, results, duration_s)


def summarize(config: IngestConfig, results: list[ShardResult], duration_s: float) -> dict:
    total = lambda key: sum(r.stats[key] for r in results)  # noqa: E731
    crawled = [r for r in results if not r.skipped]
    errors: dict[str, int] = {}
    for r in results:
        for message, n in r.stats["status_dict"].items():
            errors[message] = errors.get(message, 0) + n
    return {
        "output_uri": config.output_uri, "shards": len(results), "shards_skipped": len(results) - len(crawled),
        "samples": total("count"), "successes": total("successes"),
        "failed_to_download": total("failed_to_download"), "failed_to_resize": total("failed_to_resize"),
        "duplicates": total("duplicates"), "duration_s": round(duration_s, 2),
        "samples_per_s": round(sum(r.stats["count"] for r in crawled) / max(duration_s, 1e-9), 1),
        "top_errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])[:distribute.TOP_ERRORS]),
    }


@task(name="publish_ingest_summary", cache_policy=NO_CACHE)
def publish_ingest_summary(summary: dict) -> None:
    """A table artifact with the ingest's outcome, shown in the Prefect UI."""
    rows = [{"metric": k, "value": v} for k, v in summary.items() if k != "top_errors"]
    rows += [{"metric": f"error: {message}", "value": n} for message, n in summary["top_errors"].items()]
    create_table_artifact(rows, key="ingest-summary", description=f"Ingest into {summary['output_uri']}")
    publish_summary("ingest-report", f"Ingest into {summary['output_uri']}",
                    {k: v for k, v in summary.items() if k not in ("top_errors", "output_uri")},
                    "Failures per domain: `clipline sql --query success_by_domain`; `--query top_errors`.")
