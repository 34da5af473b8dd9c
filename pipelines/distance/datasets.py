"""The items a distance run draws from a dataset: images or videos of WebDataset shards, with their captions.

An image sample is `key.jpg|png|webp` + `key.txt`; a video sample (clipline's
video ingest) is `key.txt` plus its frames `key.f000.jpg`, `key.f001.jpg`, ...
A dataset's sample is `num_items` items drawn without replacement, seeded by
(seed, dataset name), so adding a dataset to a comparison leaves the others'
samples unchanged. For a video, `frames_per_video` of its frames are drawn at
random, as the reference analysis embeds random frames: every frame is a
point of the image space, and the caption one point of the text space.
"""

from __future__ import annotations

import itertools
import logging
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from clipline.pipelines import shard_format
from clipline.pipelines.data.loader import shard_uris
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.shard_format import index_tar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    """One image or video sample: its tar, its image members (a video's frames, in order) and its caption."""

    shard: str
    key: str
    images: tuple[str, ...]
    caption: str


@dataclass(frozen=True)
class DatasetSample:
    """A dataset's drawn items and, for each, the image members that are embedded."""

    name: str
    items: tuple[Item, ...]
    picked: tuple[tuple[str, ...], ...]  # per item: the members embedded (frames_per_video for videos)
    available: int  # items the dataset has

    @property
    def captions(self) -> list[str]:
        return [item.caption for item in self.items]

    def image_refs(self) -> list[tuple[str, str]]:
        """(shard, member) of every image embedded, item by item."""
        return [(item.shard, member) for item, members in zip(self.items, self.picked, strict=True)
                for member in members]


def index_shard(uri: str) -> list[Item]:
    """The samples of one tar that have an image (or frames) and a caption, in member order."""
    return [Item(uri, sample.key, sample.images, sample.caption)
            for sample in index_tar(uri, text_exts=("txt",)) if sample.caption]


def index_dataset(name: str, spec: str) -> list[Item]:
    """Every usable item of a dataset's shards; a dataset with none is an error naming it."""
    items = [item for uri in shard_uris(spec) for item in index_shard(uri)]
    if not items:
        raise ClipLineError(f"dataset {name} ({spec}) has no sample with both an image and a caption",
                            "give clipline shards of key.jpg|png + key.txt, or video frames key.f000.jpg + key.txt")
    return items


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def draw(name: str, items: Sequence[Item], num_items: int, frames_per_video: int, seed: int) -> DatasetSample:
    """`num_items` items without replacement (all when fewer), in file order, and each one's frames."""
    rng = _rng(seed, name)
    if len(items) <= num_items:
        log.info("dataset %s has %d items (asked %d): using all", name, len(items), num_items)
        chosen = list(items)
    else:
        chosen = [items[i] for i in np.sort(rng.choice(len(items), num_items, replace=False))]
    picked = tuple(_frames(item.images, frames_per_video, rng) for item in chosen)
    return DatasetSample(name, tuple(chosen), picked, len(items))


def _frames(members: tuple[str, ...], count: int, rng: np.random.Generator) -> tuple[str, ...]:
    if len(members) <= count:
        return members
    return tuple(members[i] for i in np.sort(rng.choice(len(members), count, replace=False)))


def read_members(refs: Sequence[tuple[str, str]]) -> Iterator[bytes]:
    """The bytes of each (shard, member), in the order given; each run of one shard is read in one pass."""
    for shard, run in itertools.groupby(refs, key=lambda ref: ref[0]):
        yield from shard_format.read_members(shard, [member for _, member in run])
