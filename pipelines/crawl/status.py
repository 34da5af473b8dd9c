"""Record a shard's outcome in the results store: one `ingest_shards` row and its `ingest_samples` rows."""

from __future__ import annotations

from urllib.parse import urlsplit

from clipline.pipelines.compute import current_node
from clipline.pipelines.config import IngestConfig
from clipline.pipelines.crawl.reader import CAPTION, KEY, URL
from clipline.pipelines.store.writer import ResultsWriter, now

SAMPLE_COLUMNS = ("status", "error_message", "width", "height", "original_width", "original_height",
                  "sha256", "duplicate")


def domain_of(url: str | None) -> str | None:
    try:
        return urlsplit(url).hostname if url else None
    except ValueError:
        return None


def record_shard(config: IngestConfig, run_id: str, shard_id: int, stats: dict, samples: list[dict]) -> None:
    """Written before the shard's commit marker, so a committed shard is always in the store."""
    written_at = now()
    common = {"run_id": run_id, "dataset_uri": config.output_uri, "shard_id": shard_id}
    with ResultsWriter(config.store) as results:
        results.append("ingest_samples", [
            {**common, "key": s[KEY], "url": s[URL], "domain": domain_of(s[URL]), "caption": s.get(CAPTION),
             **{c: s.get(c) for c in SAMPLE_COLUMNS}, "written_at": written_at} for s in samples])
        results.append("ingest_shards", [{
            **common, "num_samples": stats["count"], "num_success": stats["successes"],
            "num_failed": stats["count"] - stats["successes"], "num_duplicates": stats["duplicates"],
            "bytes_written": stats["bytes"], "duration_s": stats["duration"], "written_at": written_at,
            "node": current_node()}])
