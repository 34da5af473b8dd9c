"""WebDataset shards -> batches of (inputs, tokens, skipped) for one training worker.

Shards are split between training workers (rank r of W takes shards r, r+W, ...)
and again between DataLoader processes, or resampled with replacement
(`resampled`). A sample that does not decode, or a tar that breaks off, is
skipped with a warning and counted; the count travels with each batch so the
loop can log it. `s3://` and `memory://` shards are read through fsspec.
What a sample becomes is the `decode` given (`image_sample` here; video clips
in pipelines.data.video_loader).
"""

from __future__ import annotations

import functools
import io
import logging
import posixpath
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import webdataset as wds
from braceexpand import braceexpand
from PIL import Image

from clipline.pipelines import storage
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.shard_format import read_sizes, sample_images

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor, int]  # images (or clips), tokens, samples skipped since the last batch
Decode = Callable[[dict], tuple[torch.Tensor, str]]  # a WebDataset sample -> (model input, caption)


def _source_shards(source: str) -> list[str]:
    if "{" not in source and not source.endswith(".tar") and storage.is_dir(source):
        return sorted(storage.glob(storage.join(source, "*.tar")))  # a dataset folder: all its shards
    return list(braceexpand(source))


def expand_shards(spec: str) -> list[str]:
    """Each '::'-separated source as shard URIs: brace-expanded, or a folder's *.tar."""
    urls = [url for part in spec.split("::") if part.strip() for url in _source_shards(part.strip())]
    if not urls:
        raise ClipLineError(f"no shards in {spec!r}", "give e.g. 'data/{00000..00009}.tar'")
    return urls


def shard_uris(spec: str) -> list[str]:
    """The existing shards of a spec: a folder (its *.tar, sorted), a .tar, or brace patterns joined by '::'."""
    uris = expand_shards(spec)
    check_shards(uris)
    return uris


def check_shards(urls: list[str]) -> None:
    """Fail before training if any shard is missing."""
    missing = [u for u in urls if not storage.exists(u)]
    if missing:
        raise ClipLineError(f"{len(missing)} of {len(urls)} shards do not exist, e.g. {missing[0]}",
                            "check the --data pattern and the storage location")


def dataset_size(urls: list[str]) -> int | None:
    """Samples in the shards, from the sizes.json beside them (written by clipline ingest), if complete."""
    sizes: dict[tuple[str, str], int] = {}
    for folder in {posixpath.dirname(u) for u in urls}:
        sizes.update({(folder, name): n for name, n in read_sizes(folder).items()})
    keys = [(posixpath.dirname(u), posixpath.basename(u)) for u in urls]
    return sum(sizes[k] for k in keys) if all(k in sizes for k in keys) else None


def _gopen_fsspec(url: str, mode: str = "rb", bufsize: int = 8192, **_):
    fs, path = storage.filesystem(url)
    return fs.open(path, mode)


for _scheme in ("s3", "memory"):  # webdataset 1.0 has no s3:// opener of its own
    wds.gopen_schemes[_scheme] = _gopen_fsspec


MAX_UNREADABLE_IN_A_ROW = 1000  # with --resampled a stream of only unreadable shards would never end


class _Skips:
    """Samples skipped in this DataLoader process since the last batch, and how many failed in a row."""

    def __init__(self, urls: list[str]) -> None:
        self.count = 0
        self.in_a_row = 0
        self.urls = urls

    def handler(self, error: Exception) -> bool:
        self.count += 1
        self.in_a_row += 1
        log.warning("skipping unreadable data: %s", error)
        if self.in_a_row >= MAX_UNREADABLE_IN_A_ROW:
            raise ClipLineError(f"{self.in_a_row} unreadable samples or shards in a row, none readable "
                                f"(last: {error}; shards e.g. {self.urls[0]})",
                                "check that --data names readable WebDataset tars of image + txt samples")
        return True  # keep going

    def readable(self) -> None:
        self.in_a_row = 0

    def take(self) -> int:
        taken, self.count = self.count, 0
        return taken


def _decode(sample: dict, preprocess: Callable) -> tuple[torch.Tensor, str]:
    images = sample_images(sample)
    if len(images) != 1 or "txt" not in sample:
        raise ValueError(f"sample {sample.get('__key__')} has no single image or no caption")
    with Image.open(io.BytesIO(images[0])) as image:
        return preprocess(image.convert("RGB")), sample["txt"].decode("utf-8")


def image_sample(preprocess: Callable) -> Decode:
    """Decode image-text samples: the image through `preprocess`, and the caption."""
    return functools.partial(_decode, preprocess=preprocess)


def _batches(samples, decode: Decode, tokenizer: Callable, batch_size: int, skips: _Skips) -> Iterator[Batch]:
    images, texts = [], []
    for sample in samples:
        try:
            image, text = decode(sample)
        except (OSError, ValueError, SyntaxError) as e:  # what Pillow raises for broken images
            skips.handler(e)
            continue
        skips.readable()
        images.append(image)
        texts.append(text)
        if len(images) == batch_size:
            yield torch.stack(images), tokenizer(texts), skips.take()
            images, texts = [], []


@dataclass(frozen=True)
class LoaderSpec:
    urls: list[str]
    batch_size: int
    rank: int = 0
    world_size: int = 1
    resampled: bool = False
    shuffle: int = 1000
    data_workers: int = 1
    seed: int = 0


def _pipeline(spec: LoaderSpec, epoch: int, decode: Decode, tokenizer: Callable) -> wds.DataPipeline:
    skips = _Skips(spec.urls)
    seed = spec.seed + 1000 * epoch + spec.rank
    if spec.resampled:
        shards = wds.ResampledShards(spec.urls, seed=seed, deterministic=True)
    else:
        mine = spec.urls[spec.rank::spec.world_size]
        if spec.shuffle:
            random.Random(seed).shuffle(mine)
        shards = wds.SimpleShardList(mine)
    stages = [shards, wds.split_by_worker, wds.tarfile_to_samples(handler=skips.handler)]
    if spec.shuffle:
        stages.append(wds.shuffle(spec.shuffle, seed=seed))
    stages.append(lambda samples: _batches(samples, decode, tokenizer, spec.batch_size, skips))
    return wds.DataPipeline(*stages)


def make_loader(spec: LoaderSpec, epoch: int, decode: Decode, tokenizer: Callable) -> torch.utils.data.DataLoader:
    """One epoch of batches for this worker (an endless stream when resampled)."""
    shards_here = len(spec.urls) if spec.resampled else len(spec.urls[spec.rank::spec.world_size])
    if shards_here == 0:
        raise ClipLineError(f"training worker {spec.rank} of {spec.world_size} has no shard",
                            "use at least as many shards as workers, or --resampled")
    workers = min(spec.data_workers, shards_here)
    return torch.utils.data.DataLoader(_pipeline(spec, epoch, decode, tokenizer), batch_size=None,
                                       num_workers=workers, persistent_workers=False,
                                       prefetch_factor=4 if workers else None)


def endless_batches(spec: LoaderSpec, decode: Decode, tokenizer: Callable,
                    first_epoch: int = 0) -> Iterator[tuple[int, Batch]]:
    """(epoch, batch) forever, epoch after epoch; an epoch without one batch is an error."""
    epoch = first_epoch
    while True:
        produced = 0
        for batch in make_loader(spec, epoch, decode, tokenizer):
            produced += 1
            yield epoch, batch
        if produced == 0:
            raise ClipLineError(f"no batch of {spec.batch_size} readable samples in the shards of worker "
                                f"{spec.rank} (e.g. {spec.urls[spec.rank]})",
                                "check that the shards are readable WebDataset tars, or lower --batch-size")
        epoch += 1
