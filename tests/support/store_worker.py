"""A separate process that writes to or reads from a results store (concurrency tests).

    python store_worker.py write RESULTS_URI WRITER_ID NUM_BATCHES ROWS_PER_BATCH
    python store_worker.py read RESULTS_URI STOP_FILE   -> prints one JSON line per query
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from clipline.pipelines.config import StoreConfig
from clipline.pipelines.store.query import run_query
from clipline.pipelines.store.writer import ResultsWriter, now


def write(results_uri: str, writer_id: str, num_batches: int, rows_per_batch: int) -> None:
    writer = ResultsWriter(StoreConfig(results_uri=results_uri, flush_rows=10**9))
    for batch in range(num_batches):
        writer.append("train_metrics", [
            {"run_id": writer_id, "step": batch * rows_per_batch + i, "name": "seq",
             "value": float(batch), "time": now()} for i in range(rows_per_batch)])
        writer.flush()
        print(json.dumps({"flushed": batch}), flush=True)


def read(results_uri: str, stop_file: str) -> None:
    while not os.path.exists(stop_file):
        try:
            rows = run_query(results_uri, "SELECT count(*) FROM train_metrics").rows
            print(json.dumps({"count": rows[0][0]}), flush=True)
        except Exception as e:  # noqa: BLE001 - the test asserts there are none
            print(json.dumps({"error": f"{type(e).__name__}: {e}"}), flush=True)
        time.sleep(0.05)


if __name__ == "__main__":
    verb, *rest = sys.argv[1:]
    if verb == "write":
        write(rest[0], rest[1], int(rest[2]), int(rest[3]))
    else:
        read(rest[0], rest[1])
