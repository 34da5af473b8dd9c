"""What a curation run writes to its output folder: the kept keys with their digest, every sample's scores and
verdict, and the kept samples resharded into new WebDataset tars with sizes.json (ready for `clipline train`).

The digest is the sha256 of the kept samples' keys, image sha256 and captions,
in key order: the same input and config give the same digest, and any change
in what is kept changes it. Tars are written with fixed member metadata, so
the same kept samples give byte-identical shards.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from clipline.pipelines import storage
from clipline.pipelines.crawl.writer import tar_sink, write_sizes
from clipline.pipelines.curate.filters import FilterOutcome
from clipline.pipelines.curate.table import ScoreTable
from clipline.pipelines.shard_format import ShardFiles, index_tar, split_member, stream_members

KEPT_KEYS = "kept_keys.parquet"
SCORES = "scores.parquet"


def content_digest(table: ScoreTable, kept: np.ndarray) -> str:
    digest = hashlib.sha256()
    for i in np.flatnonzero(kept):
        digest.update(f"{table.keys[i]}\t{table.sha256[i]}\t{table.captions[i] or ''}\n".encode())
    return digest.hexdigest()


def _write_parquet(uri: str, data: pa.Table) -> None:
    buffer = io.BytesIO()
    pq.write_table(data, buffer, compression="zstd")
    storage.write_bytes(uri, buffer.getvalue())


def write_kept_keys(output_uri: str, table: ScoreTable, kept: np.ndarray, digest: str) -> str:
    rows = np.flatnonzero(kept)
    data = pa.table({"key": table.keys[rows].tolist(), "sha256": table.sha256[rows].tolist(),
                     "source_shard": table.shards[rows].tolist()})
    uri = storage.join(output_uri, KEPT_KEYS)
    _write_parquet(uri, data.replace_schema_metadata({"digest": digest}))
    return uri


def reasons(table: ScoreTable, outcomes: Sequence[FilterOutcome]) -> list[str]:
    """Per sample, the filters that remove it (comma-joined; empty when kept)."""
    return [",".join(o.name for o in outcomes if o.removed[i]) for i in range(len(table))]


def write_scores(output_uri: str, table: ScoreTable, outcomes: Sequence[FilterOutcome]) -> str:
    """Every sample's scores and the filters that removed it, for queries and the report."""
    data = pa.table({
        "key": table.keys.tolist(), "source_shard": table.shards.tolist(), "caption": table.captions,
        "caption_words": table.caption_words, "caption_chars": table.caption_chars, "width": table.width,
        "height": table.height, "original_width": table.original_width, "original_height": table.original_height,
        "aspect_ratio": table.aspect_ratio, "phash": table.phash, "sha256": table.sha256.tolist(),
        "clip_score": table.clip_score, "cluster": table.cluster, "nn_cosine": table.nn_cosine,
        "eval_bits": table.eval_bits, "eval_cosine": table.eval_cosine,
        "eval_match": [None if m is None else str(m) for m in table.eval_match],
        "removed_by": reasons(table, outcomes)})
    uri = storage.join(output_uri, SCORES)
    _write_parquet(uri, data)
    return uri


class SourceIndex:
    """key -> member names of each source shard, indexed once per run (a source feeds several new shards)."""

    def __init__(self) -> None:
        self._indexed: dict[str, dict[str, list[str]]] = {}

    def members(self, shard_uri: str) -> dict[str, list[str]]:
        if shard_uri not in self._indexed:
            self._indexed[shard_uri] = {s.key: [*s.images, *(f"{s.key}.{ext}" for ext in sorted(s.texts))]
                                        for s in index_tar(shard_uri)}
        return self._indexed[shard_uri]


def _read_samples(shard_uri: str, keys: Sequence[str], index: SourceIndex) -> dict[str, dict[str, bytes]]:
    members = index.members(shard_uri)
    samples: dict[str, dict[str, bytes]] = {}
    for name, data in stream_members(shard_uri, [m for key in keys for m in members[key]]):
        key, ext = split_member(name)
        samples.setdefault(key, {})[ext] = data
    return samples


def write_shard(output_uri: str, shard_id: int, keys: Sequence[str], sources: Sequence[str],
                index: SourceIndex) -> str:
    """One curated tar: the given samples, in the order given, read from their source shards."""
    samples: dict[str, dict[str, bytes]] = {}
    for source in dict.fromkeys(sources):
        wanted = [k for k, s in zip(keys, sources, strict=True) if s == source]
        samples.update(_read_samples(source, wanted, index))
    uri = ShardFiles.of(output_uri, shard_id).tar
    with tar_sink(uri) as sink:
        for key in keys:
            sink.add(key, dict(sorted(samples[key].items())))
    return uri


def write_shards(output_uri: str, table: ScoreTable, kept: np.ndarray, samples_per_shard: int) -> list[str]:
    """The kept samples as `{id:05d}.tar` of `samples_per_shard` each, in key order, plus sizes.json."""
    rows = np.flatnonzero(kept)
    chunks = [rows[start:start + samples_per_shard] for start in range(0, len(rows), samples_per_shard)]
    index = SourceIndex()
    uris = [write_shard(output_uri, shard_id, table.keys[chunk].tolist(), table.shards[chunk].tolist(), index)
            for shard_id, chunk in enumerate(chunks)]
    for stale in storage.glob(storage.join(output_uri, "*.tar")):
        if stale not in uris:
            storage.remove(stale)  # a rerun that keeps fewer samples must not leave old shards behind
    write_sizes(output_uri, {shard_id: len(chunk) for shard_id, chunk in enumerate(chunks)})
    return uris
