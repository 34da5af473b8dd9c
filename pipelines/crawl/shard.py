"""Crawl one shard: fetch every row's URL, decode and resize, write the shard files.

A shard is idempotent: a committed shard (its stats file exists) is skipped,
an uncommitted one is redone from scratch, and with `retry_failed` only the
failed rows of a committed shard are fetched again and the shard rewritten.
Downloads run concurrently on one event loop; decoding runs in a small
thread pool (Pillow releases the GIL while it decodes and resizes).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from clipline.pipelines import storage
from clipline.pipelines.config import IngestConfig
from clipline.pipelines.crawl import writer
from clipline.pipelines.crawl.fetcher import Fetcher, FetchResult
from clipline.pipelines.crawl.reader import CAPTION, KEY, URL
from clipline.pipelines.crawl.sample import SampleDecoder, SampleRejected
from clipline.pipelines.crawl.writer import TarSink
from clipline.pipelines.shard_format import ShardFiles, read_samples

log = logging.getLogger(__name__)

SUCCESS, FAILED_TO_DOWNLOAD, FAILED_TO_RESIZE = "success", "failed_to_download", "failed_to_resize"
DECODE_THREADS = 2  # per worker; more only adds GIL contention on 2 cores
ProgressFn = Callable[[int, int], None]  # (samples done, successes) since the last call


@dataclass(frozen=True)
class ShardResult:
    shard_id: int
    stats: dict
    skipped: bool  # already committed, nothing fetched
    samples: list[dict]  # the parquet rows (empty when skipped)


def _status_row(row: dict, status: str, error: str | None, fields: dict, sha256: str | None = None) -> dict:
    base = {KEY: row[KEY], URL: row[URL], CAPTION: row.get(CAPTION), "status": status, "error_message": error,
            **fields, "sha256": sha256}
    extras = {k: v for k, v in row.items() if k not in (KEY, URL, CAPTION)}
    return {**base, **extras}


class _ShardCrawl:
    """The state of one shard's crawl: fetcher, decode pool, tar and status rows."""

    def __init__(self, config: IngestConfig, decode: SampleDecoder, sink: TarSink, on_progress: ProgressFn | None):
        self.config = config
        self.decode = decode
        self.no_fields = dict.fromkeys(decode.fields)
        self.sink = sink
        self.on_progress = on_progress
        self.rows: list[dict] = []
        self._pending = [0, 0]
        self._last_report = time.monotonic()

    async def run(self, rows: list[dict]) -> None:
        loop = asyncio.get_running_loop()
        limit = asyncio.Semaphore(self.config.fetch.threads_per_worker)
        with ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="decode") as pool:
            async with Fetcher(self.config.fetch) as fetcher:
                async def one(row: dict) -> dict:
                    async with limit:
                        fetched = await fetcher.fetch(row[URL])
                    return await self._store(row, fetched, loop, pool)
                for next_done in asyncio.as_completed([one(r) for r in rows]):
                    self._record(await next_done)
        self._report(force=True)

    async def _store(self, row: dict, fetched: FetchResult, loop, pool) -> dict:
        if not fetched.ok:
            return _status_row(row, FAILED_TO_DOWNLOAD, fetched.error, self.no_fields)
        sha256 = hashlib.sha256(fetched.body).hexdigest()
        try:
            decoded = await loop.run_in_executor(pool, self.decode, fetched.body, row)
        except SampleRejected as e:
            return _status_row(row, FAILED_TO_RESIZE, str(e), self.no_fields, sha256)
        status = _status_row(row, SUCCESS, None, decoded.fields, sha256)
        members = dict(decoded.members)
        if row.get(CAPTION) is not None:
            members["txt"] = row[CAPTION].encode("utf-8")
        members["json"] = writer.json_bytes({**status, **(decoded.meta or {})})
        self.sink.add(row[KEY], members)
        return status

    def _record(self, status: dict) -> None:
        self.rows.append(status)
        self._pending[0] += 1
        self._pending[1] += status["status"] == SUCCESS
        self._report()

    def _report(self, force: bool = False) -> None:
        if self.on_progress and (force or time.monotonic() - self._last_report > 0.5) and self._pending[0]:
            self.on_progress(*self._pending)
            self._pending, self._last_report = [0, 0], time.monotonic()


def _flag_duplicates(rows: list[dict]) -> int:
    """Mark successes whose bytes an earlier key (in input order) already had; return how many."""
    seen: set[str] = set()
    for row in rows:
        row["duplicate"] = row["status"] == SUCCESS and row["sha256"] in seen
        if row["status"] == SUCCESS:
            seen.add(row["sha256"])
    return sum(r["duplicate"] for r in rows)


def _stats(shard_id: int, rows: list[dict], bytes_written: int, started: float) -> dict:
    errors: dict[str, int] = {}
    for row in rows:
        if row["error_message"]:
            errors[row["error_message"]] = errors.get(row["error_message"], 0) + 1
    count = lambda status: sum(r["status"] == status for r in rows)  # noqa: E731
    return {
        "shard_id": shard_id, "count": len(rows), "successes": count(SUCCESS),
        "failed_to_download": count(FAILED_TO_DOWNLOAD), "failed_to_resize": count(FAILED_TO_RESIZE),
        "duplicates": sum(bool(r.get("duplicate")) for r in rows), "bytes": bytes_written,
        "start_time": started, "end_time": time.time(), "duration": time.time() - started, "status_dict": errors,
    }


def crawl_shard(shard_id: int, rows: pa.Table, config: IngestConfig, decode: SampleDecoder,
                on_progress: ProgressFn | None = None,
                on_written: Callable[[dict, list[dict]], None] | None = None) -> ShardResult:
    """Crawl one shard (or skip it if committed); `on_written` runs before the commit marker."""
    files = ShardFiles.of(config.output_uri, shard_id)
    writer.finish_retry(files)  # a rewrite that died after its manifest: complete it first
    committed = writer.read_stats(files)
    if committed is not None and not (config.retry_failed and committed["successes"] < committed["count"]):
        if on_progress:
            on_progress(committed["count"], committed["successes"])
        return ShardResult(shard_id, committed, skipped=True, samples=[])
    started = time.time()
    writer.remove_leftovers(files)
    todo, kept = _plan(files, rows.to_pylist(), committed is not None)
    target = writer.retry_files(files) if committed is not None else files  # a rewrite commits as one
    with writer.tar_sink(target.tar) as sink:
        for key, members in kept.items():
            sink.add(key, members["members"])
        crawl = _ShardCrawl(config, decode, sink, on_progress)
        asyncio.run(crawl.run(todo))
        if on_progress and kept:
            on_progress(len(kept), len(kept))
        status_rows = sorted([m["status"] for m in kept.values()] + crawl.rows, key=lambda r: r[KEY])
        _flag_duplicates(status_rows)
        bytes_written = sink.bytes_written
    writer.write_status_parquet(target.parquet, status_rows)
    stats = _stats(shard_id, status_rows, bytes_written, started)
    if on_written:
        on_written(stats, status_rows)
    if committed is None:
        writer.commit(files, stats)
    else:
        writer.commit_retry(files, stats)
    log.info("shard %05d: %d/%d ok in %.1f s", shard_id, stats["successes"], stats["count"], stats["duration"])
    return ShardResult(shard_id, stats, skipped=False, samples=status_rows)


def _plan(files: ShardFiles, rows: list[dict], committed: bool) -> tuple[list[dict], dict[str, dict]]:
    """Rows to fetch, and the committed successes to carry over (only with retry_failed)."""
    if not committed:
        return rows, {}
    previous = pq.read_table(pa.BufferReader(storage.read_bytes(files.parquet))).to_pylist()
    members = read_samples(files.tar)
    kept = {r[KEY]: {"status": r, "members": members[r[KEY]]} for r in previous
            if r["status"] == SUCCESS and r[KEY] in members}
    return [r for r in rows if r[KEY] not in kept], kept
