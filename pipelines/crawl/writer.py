"""Write one shard: `{id:05d}.tar`, `{id:05d}.parquet`, then `{id:05d}_stats.json` as the commit marker.

Rewriting a committed shard (--retry-failed) must not leave a new tar beside old stats if it dies half way:
the three new files are written under `.retry` names, then a manifest (`{id:05d}_retry.json`) naming them
commits the new generation, then each is moved over its final name (stats last) and the manifest deleted.
A crash before the manifest leaves the old shard whole (the `.retry` files are leftovers); a crash after it
is rolled forward by `finish_retry`, which every crawl of the shard runs first.

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
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from clipline.pipelines import storage
from clipline.pipelines.shard_format import SIZES_FILE, ShardFiles, member_name, sizes_json

# USTAR as tarfile writes it (format=USTAR_FORMAT, mode 0o444, mtime 0, owner 0/0): a 512-byte header per member,
# the data padded with NULs to 512, and at the end two NUL blocks, the file padded to a 10,240-byte record.
_BLOCK, _RECORD = tarfile.BLOCKSIZE, tarfile.RECORDSIZE
_SIZE, _CHKSUM = slice(124, 136), slice(148, 156)  # fields of the header; the name is its first 100 bytes
_MAX_SIZE = 8**11  # the 11 octal digits of USTAR's size field


def _header_template() -> tuple[bytes, int]:
    """A member header with an empty name and size 0, and the sum of its bytes with the checksum field as spaces."""
    info = tarfile.TarInfo("")
    info.mode, info.mtime = 0o444, 0
    header = bytearray(info.tobuf(tarfile.USTAR_FORMAT, tarfile.ENCODING, "surrogateescape"))
    header[_SIZE] = bytes(12)  # size 0 is written as digits; zero it so a member's size can be added to the sum
    header[_CHKSUM] = b" " * 8
    return bytes(header), sum(header)


_TEMPLATE, _TEMPLATE_SUM = _header_template()


def _header(name: str, size: int) -> bytes:
    """tarfile's USTAR header for a member, from a template: a shard writes three members per image, and tarfile's
    addfile took ~6x the time per sample. Names over 100 bytes (split into USTAR's prefix) go to tarfile."""
    encoded = name.encode(tarfile.ENCODING, "surrogateescape")
    if len(encoded) > 100 or size >= _MAX_SIZE:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = size, 0o444, 0
        return info.tobuf(tarfile.USTAR_FORMAT, tarfile.ENCODING, "surrogateescape")
    size_field = b"%011o\0" % size
    header = bytearray(_TEMPLATE)
    header[: len(encoded)] = encoded
    header[_SIZE] = size_field
    header[_CHKSUM] = b"%06o\0 " % (_TEMPLATE_SUM + sum(encoded) + sum(size_field))  # 6 digits, NUL, space
    return bytes(header)


class TarSink:
    """Appends samples (`key.ext` members) to a tar file being written, byte for byte as tarfile (USTAR) writes
    them."""

    def __init__(self, file: BinaryIO):
        self._file = file
        self._offset = 0
        self.bytes_written = 0  # member data, headers and padding excluded

    def add(self, key: str, members: dict[str, bytes]) -> None:
        parts = []
        for ext, data in members.items():
            size = len(data)
            parts += (_header(member_name(key, ext), size), data, bytes(-size % _BLOCK))
            self.bytes_written += size
        chunk = b"".join(parts)
        self._file.write(chunk)
        self._offset += len(chunk)

    def close(self) -> None:
        """The end-of-archive marker (two NUL blocks), then NULs up to a whole record, as tarfile.close writes."""
        end = self._offset + 2 * _BLOCK
        self._file.write(bytes(2 * _BLOCK + -end % _RECORD))


@contextlib.contextmanager
def tar_sink(uri: str) -> Iterator[TarSink]:
    """Stream a tar into place; it appears under `uri` only if the block succeeds."""
    with storage.staged_file(uri) as path, open(path, "wb") as file:
        sink = TarSink(file)
        yield sink
        sink.close()


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
    """Delete staging files a killed writer left beside this shard (never under a final name); run after
    `finish_retry`, so `.retry` files left here belong to no committed generation."""
    stem = files.tar.removesuffix(".tar")
    for uri in storage.glob(f"{stem}.*.tmp-*") + storage.glob(f"{stem}_stats.json.tmp-*") + \
            storage.glob(f"{stem}*{RETRY_SUFFIX}"):
        storage.remove(uri)


RETRY_SUFFIX = ".retry"


def retry_files(files: ShardFiles) -> ShardFiles:
    """Where a rewrite of a committed shard writes its three files before they replace the old ones."""
    return ShardFiles(files.tar + RETRY_SUFFIX, files.parquet + RETRY_SUFFIX, files.stats + RETRY_SUFFIX)


def _retry_manifest(files: ShardFiles) -> str:
    return files.tar.removesuffix(".tar") + "_retry.json"


def commit_retry(files: ShardFiles, stats: dict) -> None:
    """Commit a rewrite whose tar and parquet are at `retry_files(files)`: stats, manifest, then publish."""
    staged = retry_files(files)
    storage.write_bytes(staged.stats, json_bytes(stats))
    storage.write_bytes(_retry_manifest(files), json_bytes(
        {"tar": staged.tar, "parquet": staged.parquet, "stats": staged.stats, "generation": stats["end_time"]}))
    finish_retry(files)


def finish_retry(files: ShardFiles) -> None:
    """Move a committed rewrite's files over the shard's (stats last), then drop its manifest; no-op without one."""
    manifest = _retry_manifest(files)
    if not storage.exists(manifest):
        return
    staged = retry_files(files)
    for source, target in ((staged.tar, files.tar), (staged.parquet, files.parquet), (staged.stats, files.stats)):
        if storage.exists(source):  # gone: moved before a crash
            storage.move(source, target)
    storage.remove(manifest)


def commit(files: ShardFiles, stats: dict) -> None:
    storage.write_bytes(files.stats, json_bytes(stats))


def write_sizes(output_uri: str, successes_by_shard: dict[int, int]) -> None:
    """`sizes.json`: tar name -> sample count, for open_clip's trainer (no --train-num-samples needed)."""
    storage.write_bytes(storage.join(output_uri, SIZES_FILE), sizes_json(successes_by_shard))
