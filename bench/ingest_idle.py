"""The fixed cost of clipline's ingest processes, idle: the baseline of `make bench-scale-ingest`.

Imports what `clipline ingest` imports (the `ingest_images` flow: Prefect, Ray, the crawler), runs a Prefect
flow (which starts Prefect's local API server, as `clipline ingest` does without PREFECT_API_URL), starts Ray
inside it as the crawl does (`ensure_ray()`), then holds everything idle for --seconds. Peak PSS of this
process tree is the Ray + Prefect + driver baseline that the crawl's own memory is measured above.

    python bench/ingest_idle.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from prefect import flow

from clipline.flows.ingest import ingest_images  # noqa: F401  (the ingest driver's imports)
from clipline.pipelines.compute import ensure_ray

log = logging.getLogger("bench.ingest_idle")


@flow(name="ingest_idle_baseline")
def hold_idle(seconds: float) -> None:
    """Start Ray as the crawl does, then wait; the processes stay up until the flow ends."""
    ensure_ray()
    log.info("Ray and Prefect up; idle for %.0f s", seconds)
    time.sleep(seconds)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0, help="how long to hold Ray and Prefect idle")
    hold_idle(p.parse_args(argv).seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
