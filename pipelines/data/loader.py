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


def shard_weights(spec: str, weights: list[float] | None) -> list[float] | None:
    """Each shard's weight, its source's (open_clip's upsampling factors), in expand_shards' order."""
    if weights is None:
        return None
    sources = [part.strip() for part in spec.split("::") if part.strip()]
    return [weight for source, weight in zip(sources, weights, strict=True) for _ in _source_shards(source)]


def shard_uris(spec: str) -> list[str]:
    """The existing shards of a spec: a folder (its *.tar, sorted), a .tar, or brace patterns joined by '::'."""
    uris = expand_shards(spec)
    check_shards(uris)
    return uris


def check_shards(urls: list[str]) -> None:
    """Fail before training if any shard is missing: one listing per folder, not one request per shard."""
    listed: dict[str, set[str]] = {}
    missing = []
    for url in urls:
        folder, name = posixpath.dirname(url) or ".", posixpath.basename(url)
        if folder not in listed:
            listed[folder] = storage.list_names(folder)
        if name not in listed[folder]:
            missing.append(url)
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


@dataclass(frozen=True)
class Batch:
    """A batch of one data stream (a DataLoader process's share of the shards), and where that stream stands."""

    inputs: torch.Tensor  # images, or clips
    tokens: torch.Tensor
    skipped: int  # samples skipped since the stream's previous batch
    keys: tuple[str, ...]
    stream: int = 0
    consumed: int = 0  # samples the stream has taken this epoch, this batch's included (decoded or skipped)
    shard: str = ""  # the shard of the batch's last sample


@dataclass(frozen=True)
class StreamStart:
    """Where each stream of an epoch starts: samples to pass over unread, and which stream goes first."""

    consumed: tuple[int, ...] = ()
    first_stream: int = 0

    def offset(self, stream: int) -> int:
        return self.consumed[stream] if stream < len(self.consumed) else 0


def _fast_forward(samples, start: int, skips: _Skips) -> Iterator[tuple[int, dict]]:
    """(samples taken so far, sample) for the samples after the first `start`, which are passed over undecoded."""
    for count, sample in enumerate(samples, start=1):
        if count <= start:
            if count == start:
                skips.take()  # skips met again while passing over were counted before
            continue
        yield count, sample


def _batches(samples, decode: Decode, tokenizer: Callable, spec: LoaderSpec, skips: _Skips, stream: int,
             start: int, reseed: Callable[[int], None] | None = None) -> Iterator[Batch]:
    inputs, texts, keys = [], [], []
    for count, sample in _fast_forward(samples, start, skips):
        if reseed:
            reseed(count)
        try:
            item, text = decode(sample)
        except (OSError, ValueError, SyntaxError) as e:  # what Pillow raises for broken images
            skips.handler(e)
            continue
        skips.readable()
        inputs.append(item)
        texts.append(text)
        keys.append(sample.get("__key__", ""))
        if len(inputs) == spec.batch_size:
            yield Batch(torch.stack(inputs), tokenizer(texts), skips.take(), tuple(keys), stream, count,
                        sample.get("__url__", ""))
            inputs, texts, keys = [], [], []
    if inputs and not spec.drop_last:
        yield Batch(torch.stack(inputs), tokenizer(texts), skips.take(), tuple(keys), stream, count,
                    sample.get("__url__", ""))


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
    weights: list[float] | None = None  # per URL, for resampling (mixing sources)
    drop_last: bool = True  # training takes full batches only; validation takes every sample


def _seed(spec: LoaderSpec, epoch: int, *more: int) -> str:
    # A string seeds random.Random through SHA-512: the same stream in every process and Python run.
    return "-".join(str(x) for x in (spec.seed, epoch, spec.rank, *more))


def num_streams(spec: LoaderSpec) -> int:
    """DataLoader processes reading for this worker (at least one stream, read in-process when 0)."""
    shards_here = len(spec.urls) if spec.resampled else len(spec.urls[spec.rank::spec.world_size])
    if shards_here == 0:
        raise ClipLineError(f"training worker {spec.rank} of {spec.world_size} has no shard",
                            "use at least as many shards as workers, or --resampled")
    return max(1, min(spec.data_workers, shards_here))


def stream_shards(spec: LoaderSpec, epoch: int, stream: int) -> list[str]:
    """The shard order of one stream in one epoch (without resampling)."""
    mine = spec.urls[spec.rank::spec.world_size]
    if spec.shuffle:
        random.Random(_seed(spec, epoch)).shuffle(mine)
    return mine[stream::num_streams(spec)]


def _resampled(spec: LoaderSpec, epoch: int, stream: int) -> Iterator[dict]:
    """Shards drawn with replacement, each with its weight (open_clip's ResampledShards2 with upsampling factors)."""
    rng = random.Random(_seed(spec, epoch, stream))
    while True:
        yield {"url": rng.choices(spec.urls, weights=spec.weights)[0]}


class _Stream(torch.utils.data.IterableDataset):
    """One epoch of batches; in DataLoader process w, stream (w + first_stream) mod streams."""

    def __init__(self, spec: LoaderSpec, epoch: int, decode: Decode, tokenizer: Callable, start: StreamStart):
        self.spec, self.epoch, self.decode, self.tokenizer, self.start = spec, epoch, decode, tokenizer, start

    def __iter__(self) -> Iterator[Batch]:
        info = torch.utils.data.get_worker_info()
        stream = ((info.id if info else 0) + self.start.first_stream) % num_streams(self.spec)
        spec, skips = self.spec, _Skips(self.spec.urls)
        shards = (_resampled(spec, self.epoch, stream) if spec.resampled
                  else ({"url": url} for url in stream_shards(spec, self.epoch, stream)))
        samples = wds.tarfile_to_samples(handler=skips.handler)(shards)
        if spec.shuffle:
            samples = wds.shuffle(spec.shuffle, seed=_seed(spec, self.epoch, stream))(samples)
        yield from _batches(samples, self.decode, self.tokenizer, spec, skips, stream, self.start.offset(stream),
                            self._reseed(stream) if info else None)

    def _reseed(self, stream: int) -> Callable[[int], None]:
        """In a DataLoader process: seed each sample's augmentation by its place in the stream, so that a
        resumed stream, which passes over samples without decoding them, augments the next ones alike.
        (Read in the training process itself, augmentation draws from the RNG the checkpoint restores.)
        Only the CPU generator, which the transforms draw from: torch.manual_seed would also queue a lazy seed
        of every accelerator, none of them initialised in a DataLoader process, each with a formatted stack
        trace: 0.8 ms per sample, more than a small image's decode."""
        base = random.Random(_seed(self.spec, self.epoch, stream, 1)).getrandbits(40)
        return lambda count: torch.default_generator.manual_seed(base + count)


def make_loader(spec: LoaderSpec, epoch: int, decode: Decode, tokenizer: Callable,
                start: StreamStart = StreamStart()) -> torch.utils.data.DataLoader:
    """One epoch of batches for this worker (an endless stream when resampled), from `start` on."""
    workers = min(spec.data_workers, num_streams(spec))
    # Its own generator: DataLoader worker seeds follow the epoch, and the global RNG (the model's) is not drawn.
    generator = torch.Generator().manual_seed(random.Random(_seed(spec, epoch)).getrandbits(62))
    return torch.utils.data.DataLoader(_Stream(spec, epoch, decode, tokenizer, start), batch_size=None,
                                       num_workers=workers, persistent_workers=False, generator=generator,
                                       prefetch_factor=4 if workers else None)
