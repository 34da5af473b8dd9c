"""`make demo`: run clipline end to end on a built-in offline sample.

It grows with each flow. Today: serve 5,000 real MNIST digits over a local
HTTP server, crawl them into WebDataset shards with the `ingest_images` flow
(Prefect + Ray), and query the results store as `clipline sql` would.
"""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path

from flows.cli import main as clipline
from flows.demo_sample import build_digit_sample, serve_folder
from pipelines import storage
from pipelines.config import FetchConfig, ImageConfig, IngestConfig, ReaderConfig, StoreConfig, home_uri

log = logging.getLogger("clipline.demo")


def write_url_list(path: Path, base_url: str, sample: list[tuple[str, str, int]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["url", "caption", "label"])
        writer.writerows((f"{base_url}/{name}", text, label) for name, text, label in sample)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Prefect's API calls, one line each
    home = Path(storage.split_protocol(storage.join(home_uri(), "demo"))[1])
    store = StoreConfig(results_uri=str(home / "results"))
    sample = build_digit_sample(home / "sample" / "digits")
    with serve_folder(home / "sample") as base_url:
        write_url_list(home / "digits.csv", f"{base_url}/digits", sample)
        config = IngestConfig(
            reader=ReaderConfig(url_list_uri=str(home / "digits.csv"), samples_per_shard=1000),
            output_uri=str(home / "datasets" / "digits"), workers=2,
            fetch=FetchConfig(allowed_networks=["127.0.0.0/8"]),  # the sample server is on loopback
            image=ImageConfig(image_size=32, resize_mode="border"), store=store)
        from flows.ingest import ingest_images

        summary = ingest_images(config)
    log.info("ingested %d/%d digits into %s", summary["successes"], summary["samples"], config.output_uri)
    for query in ("runs", "success_by_domain"):
        clipline(["sql", "--results-uri", store.results_uri, "--query", query])
    return 0


if __name__ == "__main__":
    sys.exit(main())
