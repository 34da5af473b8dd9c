"""Score one shard: per sample its caption length, image sizes, pHash, sha256 and (with a scorer) CLIP score and
image embedding. One call per shard (a Ray task), and its result is stored, once per (shard, scorer, version).

The stored file is `SCORES_URI/<scorer id>/v<SCORES_VERSION>/<shard id>.parquet`,
where the shard id digests the shard's URI and byte size: a later run on the
same shards with the same scorer reads it instead of decoding and embedding
again. Bump SCORES_VERSION whenever what a column means changes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from clipline.pipelines import storage
from clipline.pipelines.curate.phash import phash
from clipline.pipelines.curate.scorer import ScorerSpec, clip_scores, load_scorer
from clipline.pipelines.eval.features import Encoder, UnreadableImage, decode_image
from clipline.pipelines.shard_format import TarSample, index_tar, stream_members

log = logging.getLogger(__name__)

SCORES_VERSION = 1
NO_SCORER = "no-scorer"


@dataclass(frozen=True)
class SampleScore:
    """What one sample's image and caption say, without a model."""

    key: str
    caption: str | None
    width: int
    height: int
    original_width: int
    original_height: int
    phash: int
    sha256: str


def scores_file(scores_uri: str, shard_uri: str, scorer: ScorerSpec | None) -> str:
    fs, path = storage.filesystem(shard_uri)
    size = fs.size(path)
    shard_id = hashlib.sha256(f"{shard_uri}\n{size}".encode()).hexdigest()[:24]
    return storage.join(scores_uri, scorer.scorer_id if scorer else NO_SCORER, f"v{SCORES_VERSION}",
                        f"{shard_id}.parquet")


def _original_size(sample: TarSample, image: Image.Image) -> tuple[int, int]:
    """The size before the crawl resized it (the json's original_width/height), else the stored size."""
    try:
        meta = json.loads(sample.texts.get("json") or "{}")
        return int(meta["original_width"]), int(meta["original_height"])
    except (ValueError, KeyError, TypeError):
        return image.size


def _score(sample: TarSample, data: bytes, image: Image.Image) -> SampleScore:
    original = _original_size(sample, image)
    return SampleScore(sample.key, sample.caption, image.width, image.height, original[0], original[1],
                       phash(image), hashlib.sha256(data).hexdigest())


def _decoded(shard_uri: str) -> tuple[list[SampleScore], list[Image.Image]]:
    samples = index_tar(shard_uri)
    by_member = {s.images[0]: s for s in samples}  # a video sample is scored on its first frame
    scored, images = [], []
    for member, data in stream_members(shard_uri, by_member):
        try:
            image = decode_image(data)
        except UnreadableImage as e:
            log.warning("%s: skipping %s, its image does not decode (%s)", shard_uri, member, e)
            continue
        scored.append(_score(by_member[member], data, image))
        images.append(image)
    return scored, images


def _table(scored: list[SampleScore], embeddings: np.ndarray | None, clip: np.ndarray | None) -> pa.Table:
    columns = {name: [getattr(s, name) for s in scored] for name in SampleScore.__dataclass_fields__}
    n = len(scored)
    columns["clip_score"] = pa.array(clip if clip is not None else np.full(n, np.nan, np.float32), pa.float32())
    dim = embeddings.shape[1] if embeddings is not None else 0
    flat = pa.array((embeddings if embeddings is not None else np.zeros((n, 0), np.float32)).ravel(), pa.float32())
    columns["embedding"] = pa.FixedSizeListArray.from_arrays(flat, dim) if dim else pa.nulls(n, pa.list_(pa.float32()))
    columns["phash"] = pa.array(columns["phash"], pa.int64())
    return pa.table(columns)


def score_shard(shard_uri: str, encoder: Encoder | None, batch_size: int) -> pa.Table:
    """One row per readable sample of a shard, in tar order."""
    scored, images = _decoded(shard_uri)
    embeddings = clip = None
    if encoder is not None:
        embeddings, clip = clip_scores(encoder, images, [s.caption for s in scored], batch_size)
    return _table(scored, embeddings, clip)


def stored_scores(shard_uri: str, scores_uri: str, scorer: ScorerSpec | None, batch_size: int,
                  gpu: bool = False, encoder: Encoder | None = None) -> pa.Table:
    """The shard's scores: read back when stored, else computed (loading the scorer if not given) and stored."""
    uri = scores_file(scores_uri, shard_uri, scorer)
    if storage.exists(uri):
        return pq.read_table(io.BytesIO(storage.read_bytes(uri)))
    if scorer is not None and encoder is None:
        encoder = load_scorer(scorer, gpu)
    table = score_shard(shard_uri, encoder, batch_size)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    storage.write_bytes(uri, buffer.getvalue())
    log.info("scored %s: %d samples -> %s", shard_uri, table.num_rows, uri)
    return table
