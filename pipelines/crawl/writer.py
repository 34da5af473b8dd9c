"""Write one shard: `{id:05d}.tar`, `{id:05d}.parquet`, then `{id:05d}_stats.json` as the commit marker.

Layout is img2dataset's (so its readers and open_clip's trainer read it): per
sample `key.<ext>` members in the tar, one parquet row per input row
(failures included), and a stats file written last. Each file is published
atomically, so a reader never sees a truncated tar under its final name, and
a shard counts as done only once its stats file exists.
"""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from clipline.pipelines import storage
from clipline.pipelines.shard_format import SIZES_FILE, ShardFiles, member_name, sizes_json


class TarSink:
    """Appends samples (`key.ext` members) to an open tar stream."""

    def __init__(self, tar: tarfile.TarFile):
        self._tar = tar
        self.bytes_written = 0

    def add(self, key: str, members: dict[str, bytes]) -> None:
        for ext, data in members.items():
            info = tarfile.TarInfo(member_name(key, ext))
            info.size, info.mode, info.mtime = len(data), 0o444, 0
            self._tar.addfile(info, io.BytesIO(data))
            self.bytes_written += len(data)


@contextlib.contextmanager
def tar_sink(uri: str) -> Iterator[TarSink]:
    """Stream a tar into place; it appears under `uri` only if the block succeeds."""
    with storage.staged_file(uri) as path, tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        yield TarSink(tar)


def json_bytes(value: dict) -> bytes:
    return json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")


def write_status_parquet(uri: str, rows: list[dict]) -> None:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer, compression="zstd")
    storage.write_bytes(uri, buffer.getvalue())


def read_stats(files: ShardFiles) -> dict | None:
    """The shard's stats if it is committed, else None."""
    try:
        return json.loads(storage.read_text(files.stats))
    except FileNotFoundError:
        return None


def remove_leftovers(files: ShardFiles) -> None:
    """Delete staging files a killed writer left beside this shard (never under a final name)."""
    stem = files.tar.removesuffix(".tar")
    for uri in storage.glob(f"{stem}.*.tmp-*") + storage.glob(f"{stem}_stats.json.tmp-*"):
        storage.remove(uri)


def commit(files: ShardFiles, stats: dict) -> None:
    storage.write_bytes(files.stats, json_bytes(stats))


def write_sizes(output_uri: str, successes_by_shard: dict[int, int]) -> None:
    """`sizes.json`: tar name -> sample count, for open_clip's trainer (no --train-num-samples needed)."""
    storage.write_bytes(storage.join(output_uri, SIZES_FILE), sizes_json(successes_by_shard))
