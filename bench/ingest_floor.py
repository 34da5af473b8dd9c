"""The CPU floor of image ingest: the image work alone, in a tight loop, on bytes already in memory.

`process_image` (clipline's decode with JPEG draft scaling, resize with the crop folded in, JPEG encode at the
benchmark's settings) over every photo of the benchmark, on one thread, in a fresh process: no HTTP, hashing,
tar or Parquet. ms per image here, divided into the CPUs, is the rate no tool doing this work on these photos
can pass; `make bench-ingest` reports each tool's rate as a share of it.

    python bench/ingest_floor.py IMAGE_DIR [--passes 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from ingest_data import MANIFEST


def floor_ms(image_dir: Path, passes: int = 5) -> float:
    """CPU ms per image of the tight loop, measured in a fresh process (the best of `passes` passes)."""
    done = subprocess.run([sys.executable, __file__, str(image_dir), "--passes", str(passes)],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def _measure(image_dir: Path, passes: int) -> float:
    from clipline.pipelines.config import ImageConfig
    from clipline.pipelines.crawl.images import process_image

    config = ImageConfig(image_size=256, resize_mode="center_crop", encode_format="jpg")
    files = [entry["file"] for entry in json.loads((image_dir / MANIFEST).read_text())["images"]]
    bodies = [(image_dir / name).read_bytes() for name in files]
    best = float("inf")
    for _ in range(passes):
        started = time.thread_time()
        for body in bodies:
            process_image(body, config)
        best = min(best, (time.thread_time() - started) / len(bodies))
    return 1000 * best


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("image_dir", type=Path, help="a folder of bench/ingest_data.py's photos (with its manifest)")
    p.add_argument("--passes", type=int, default=5, help="passes over the photos; the fastest counts")
    args = p.parse_args()
    sys.stdout.write(f"{_measure(args.image_dir, args.passes)}\n")
