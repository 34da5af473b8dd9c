"""`make demo`: run clipline end to end on a built-in offline sample.

It grows with each flow. Today: record a run in a fresh results store and
query it back with the named queries, as `clipline sql` would.
"""

from __future__ import annotations

import logging
import os
import sys

from flows.cli import main as clipline
from pipelines import storage
from pipelines.config import StoreConfig, home_uri
from pipelines.store.runs import recorded_run

log = logging.getLogger("clipline.demo")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    os.environ.setdefault("CLIPLINE_HOME", storage.join(home_uri(), "demo"))
    store = StoreConfig()
    storage.check_writable(store.results_uri)
    with recorded_run("demo", store, store) as run:
        log.info("demo run %s writing to %s", run.run_id, store.results_uri)
    return clipline(["sql", "--results-uri", store.results_uri, "--query", "runs"])


if __name__ == "__main__":
    sys.exit(main())
