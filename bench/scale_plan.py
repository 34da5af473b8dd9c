"""`make bench-scale-plan`: training's shard planning on s3:// at 100, 1,000 and 10,000 shards (#15).

Shards sit in one S3 prefix of a moto server (a real S3 endpoint on loopback) with the sizes.json that
`clipline ingest` writes beside them. Planning is what `plan_training` does before any worker starts:
expand the --data pattern, check that every shard exists, and count the samples per epoch. Each size is
timed and its S3 requests counted (every s3fs request goes through `S3FileSystem._call_s3`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import s3fs

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from docs_section import machine_info, update_section  # noqa: E402

log = logging.getLogger("bench.scale_plan")
HEADING = "## Shard planning on S3 (make bench-scale-plan)"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000], help="shard counts to plan over")
    p.add_argument("--repeat", type=int, default=3, help="plans per size; the fastest counts")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    return p.parse_args(argv)


def start_moto() -> tuple[subprocess.Popen, str]:
    from support.net import free_port

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="bench",
                      AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    return server, os.environ["AWS_ENDPOINT_URL"]


def write_shards(fs, bucket: str, count: int) -> str:
    names = [f"{i:05d}.tar" for i in range(count)]
    fs.pipe({f"{bucket}/n{count}/{name}": b"x" for name in names}
            | {f"{bucket}/n{count}/sizes.json": json.dumps({name: 100 for name in names}).encode()})
    return f"s3://{bucket}/n{count}/{{00000..{count - 1:05d}}}.tar"


def plan(spec: str, sent: list[str]) -> tuple[float, int]:
    from clipline.pipelines.data.loader import check_shards, dataset_size, expand_shards

    before, start = len(sent), time.perf_counter()
    urls = expand_shards(spec)
    check_shards(urls)
    assert dataset_size(urls) == 100 * len(urls)
    return time.perf_counter() - start, len(sent) - before


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv or sys.argv[1:])
    server, endpoint = start_moto()
    try:
        from clipline.pipelines import storage

        time.sleep(3)
        fs = s3fs.S3FileSystem(**storage.s3_options())
        fs.mkdir("plan")
        sent: list[str] = []
        real = s3fs.S3FileSystem._call_s3

        async def counted(self, method, *a, **k):
            sent.append(str(method))
            return await real(self, method, *a, **k)

        s3fs.S3FileSystem._call_s3 = counted
        rows = []
        for count in args.sizes:
            spec = write_shards(fs, "plan", count)
            runs = [plan(spec, sent) for _ in range(args.repeat)]
            seconds, requests = min(runs)
            log.info("%d shards: %.3f s, %d S3 requests", count, seconds, requests)
            rows.append(f"| {count:,} | {seconds:.3f} s | {requests} |")
    finally:
        server.terminate()
    section = "\n".join([
        HEADING, "", f"Machine: {machine_info()}. Command: `make bench-scale-plan` "
        f"(`python bench/scale_plan.py --sizes {' '.join(map(str, args.sizes))}`), S3 = moto server on loopback "
        f"({endpoint}); fastest of {args.repeat}.", "",
        "Planning = expand the --data brace pattern, check every shard exists (one listing per folder), count "
        "samples from sizes.json. Before #15 the existence check made one request per shard.", "",
        "| shards | planning time | S3 requests |", "| ---: | ---: | ---: |", *rows, ""])
    update_section(args.out, HEADING, section)


if __name__ == "__main__":
    main()
