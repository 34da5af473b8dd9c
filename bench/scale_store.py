"""The results store at scale: 10 million `ingest_samples` rows and 1 million `train_metrics` rows.

The store is written through the store's own writer (`write_table_file`), in the
sizes real runs produce: one file per ingest shard (1,000 rows, plus its one-row
`ingest_shards` file) and one `train_metrics` file per flush. Then every named
query, `clipline sql --list`, `clipline report` and `clipline compact` are timed
as a user runs them (CLI start included), with each command's peak memory,
before and after compaction.

    .venv/bin/python bench/scale_store.py --shards 10000 --out docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
from tqdm import tqdm

from clipline.pipelines.store.schema import COMPACTED_FROM
from clipline.pipelines.store.writer import file_schema, write_table_file

log = logging.getLogger("bench.scale_store")
REPO = Path(__file__).resolve().parents[1]
CLIPLINE = Path(sys.executable).parent / "clipline"
ERRORS = [f"HTTPError: {code}" for code in (403, 404, 410, 500, 502, 503)] + [
    "TimeoutError: read timed out", "opt-out: X-Robots-Tag noai", "private address refused",
    "UnidentifiedImageError: cannot identify image file", "image too small", "DecompressionBombError"]


def _ingest_shard(rng: random.Random, dataset: str, run_id: str, shard_id: int, rows: int, at: datetime) -> pa.Table:
    statuses, errors, urls, domains, widths, shas = [], [], [], [], [], []
    for i in range(rows):
        ok = rng.random() < 0.88
        domain = f"cdn{rng.randrange(5000)}.example{rng.randrange(40)}.com"
        statuses.append("success" if ok else rng.choice(["failed_to_download", "failed_to_resize"]))
        errors.append(None if ok else rng.choice(ERRORS))
        domains.append(domain)
        urls.append(f"https://{domain}/images/{shard_id:06d}/{i:04d}-{rng.getrandbits(48):012x}.jpg")
        widths.append(256 if ok else None)
        shas.append(f"{rng.getrandbits(256):064x}" if ok else None)
    n = rows
    columns = {
        "run_id": [run_id] * n, "dataset_uri": [dataset] * n, "shard_id": [shard_id] * n,
        "key": [f"{shard_id:05d}{i:04d}" for i in range(n)], "url": urls, "domain": domains,
        "caption": [f"a photo of item {rng.randrange(10**6)} on a table" for _ in range(n)],
        "status": statuses, "error_message": errors, "width": widths, "height": widths,
        "original_width": [rng.randrange(100, 2000) for _ in range(n)],
        "original_height": [rng.randrange(100, 2000) for _ in range(n)],
        "sha256": shas, "duplicate": [False] * n, "written_at": [at] * n, COMPACTED_FROM: [None] * n,
    }
    return pa.Table.from_pydict(columns, schema=file_schema("ingest_samples"))


def _shard_row(samples: pa.Table, run_id: str, dataset: str, shard_id: int, at: datetime) -> pa.Table:
    ok = sum(s == "success" for s in samples.column("status").to_pylist())
    row = {"run_id": run_id, "dataset_uri": dataset, "shard_id": shard_id, "num_samples": samples.num_rows,
           "num_success": ok, "num_failed": samples.num_rows - ok, "num_duplicates": 0,
           "bytes_written": ok * 14_000, "duration_s": 9.5, "written_at": at, COMPACTED_FROM: None}
    return pa.Table.from_pylist([row], schema=file_schema("ingest_shards"))


def write_ingest(results: str, shards: int, rows_per_shard: int, datasets: int, seed: int,
                 first_dataset: int = 0) -> None:
    """`shards` shard writes over `datasets` datasets (a new run per dataset, 3% of shards rewritten by a retry)."""
    rng = random.Random(seed)
    start = datetime(2026, 6, 1, tzinfo=UTC)
    per_dataset = shards // datasets
    for s in tqdm(range(shards), desc="ingest shards", unit="shard", mininterval=5):
        d, shard_id = divmod(s, per_dataset)
        d += first_dataset
        retry = rng.random() < 0.03
        at = start + timedelta(days=d, seconds=shard_id * 10)
        run_id = f"ingest-{d:03d}" + ("-retry" if retry else "")
        dataset = f"s3://laion-mirror/part-{d:03d}"
        samples = _ingest_shard(rng, dataset, run_id, shard_id, rows_per_shard, at)
        write_table_file(results, "ingest_samples", samples)
        write_table_file(results, "ingest_shards", _shard_row(samples, run_id, dataset, shard_id, at))


def write_training(results: str, runs: int, steps: int, flush_rows: int, first_run: int = 0) -> None:
    """`runs` training runs of `steps` steps logging 5 scalars each, flushed every `flush_rows` rows."""
    names = ["loss", "lr", "logit_scale", "samples_per_s", "skipped_samples"]
    start = datetime(2026, 6, 1, tzinfo=UTC)
    for r in tqdm(range(first_run, first_run + runs), desc="training runs", unit="run", mininterval=5):
        run_id = f"train-{r:04d}"
        rows = [{"run_id": run_id, "step": step, "name": name, "value": 1.0 / (step + 1),
                 "time": start + timedelta(days=r, seconds=step), COMPACTED_FROM: None}
                for step in range(1, steps + 1) for name in names]
        for i in range(0, len(rows), flush_rows):
            write_table_file(results, "train_metrics",
                             pa.Table.from_pylist(rows[i:i + flush_rows], schema=file_schema("train_metrics")))
        write_table_file(results, "run_events", pa.Table.from_pylist([{
            "run_id": run_id, "flow": "train_clip", "config": "{}", "status": "completed",
            "started_at": start + timedelta(days=r), "ended_at": start + timedelta(days=r, hours=2),
            "code_version": "bench", "host": "bench", "error": None, "event_time": start + timedelta(days=r, hours=2),
            COMPACTED_FROM: None}], schema=file_schema("run_events")))


def measure(cmd: list[str], env: dict) -> dict:
    """Wall seconds and peak RSS (MB) of one command, its exit status and the tail of its output."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    return {"seconds": round(time.perf_counter() - started, 2), "peak_mb": round(usage.ru_maxrss / 1024),
            "ok": os.waitstatus_to_exitcode(status) == 0, "tail": out.decode(errors="replace")[-300:]}


def named_queries() -> list[str]:
    return sorted(p.stem for p in (REPO / "sql" / "queries").glob("*.sql"))


def time_commands(results: str, work: Path, label: str) -> dict[str, dict]:
    env = {**os.environ, "CLIPLINE_RESULTS": results}
    # As a user runs them: table format, which prints the first 1,000 rows (a csv export of a 2-million-row
    # result takes longer, most of it turning rows into Python objects and text).
    timings = {f"query {q}": measure([str(CLIPLINE), "sql", "--query", q], env) for q in named_queries()}
    timings["sql --list"] = measure([str(CLIPLINE), "sql", "--list"], env)
    timings["report"] = measure([str(CLIPLINE), "report", "--out", str(work / f"report-{label}.html")], env)
    for name, t in timings.items():
        log.info("%s %s: %.2f s, %d MB%s", label, name, t["seconds"], t["peak_mb"], "" if t["ok"] else " FAILED")
    return timings


def count_files(results: str) -> int:
    return sum(1 for _ in Path(results).rglob("*.parquet"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=10_000, help="ingest shard writes (1,000 rows each)")
    parser.add_argument("--rows-per-shard", type=int, default=1000)
    parser.add_argument("--datasets", type=int, default=10)
    parser.add_argument("--train-runs", type=int, default=100, help="training runs (2,000 steps x 5 scalars each)")
    parser.add_argument("--train-steps", type=int, default=2000)
    parser.add_argument("--flush-rows", type=int, default=100, help="train_metrics rows per file")
    parser.add_argument("--work", type=Path, default=REPO / ".bench" / "scale-store")
    parser.add_argument("--reuse", action="store_true", help="time the store already under --work")
    parser.add_argument("--skip-before", action="store_true", help="time only after compaction")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    results = str(args.work / "results")
    pristine = args.work / "pristine"
    if not args.reuse:
        shutil.rmtree(args.work, ignore_errors=True)
        write_ingest(str(pristine), args.shards, args.rows_per_shard, args.datasets, seed=0)
        write_training(str(pristine), args.train_runs, args.train_steps, args.flush_rows)
    shutil.rmtree(results, ignore_errors=True)
    shutil.copytree(pristine, results)
    figures = {"files_before": count_files(results),
               "before": {} if args.skip_before else time_commands(results, args.work, "before")}
    env = {**os.environ, "CLIPLINE_RESULTS": results}
    figures["compact"] = measure([str(CLIPLINE), "compact"], env)
    log.info("compact: %.1f s, %d MB", figures["compact"]["seconds"], figures["compact"]["peak_mb"])
    figures["files_after"] = count_files(results)
    figures["after"] = time_commands(results, args.work, "after")
    # The next day's work on the compacted store: one more dataset's ingest and one more training run. Compaction
    # merges only the new runs' folders; the compacted runs are not rewritten.
    per_dataset = args.shards // args.datasets
    write_ingest(results, per_dataset, args.rows_per_shard, 1, seed=1, first_dataset=args.datasets)
    write_training(results, 1, args.train_steps, args.flush_rows, first_run=args.train_runs)
    figures["files_next_day"] = count_files(results)
    figures["compact_next_day"] = measure([str(CLIPLINE), "compact"], env)
    log.info("compact after one more day: %.1f s, %d MB", figures["compact_next_day"]["seconds"],
             figures["compact_next_day"]["peak_mb"])
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
