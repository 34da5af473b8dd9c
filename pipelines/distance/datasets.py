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

import logging
import re
import tarfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from pipelines import storage
from pipelines.data.loader import shard_uris
from pipelines.errors import ClipLineError

log = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
# webdataset's key rule (up to the first dot of the file name), then an image or a numbered frame.
MEMBER = re.compile(r"^(?P<key>(?:.*/|)[^./]+)[.](?:(?P<frame>f\d+)[.])?(?P<ext>[^./]+)$")


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
    images: dict[str, list[str]] = {}
    captions: dict[str, str] = {}
    try:
        fs, path = storage.filesystem(uri)
        with fs.open(path, "rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
            for member in tar:
                match = MEMBER.match(member.name) if member.isfile() else None
                if not match:
                    continue
                key, ext = match["key"], match["ext"].lower()
                if ext in IMAGE_EXTS:
                    images.setdefault(key, []).append(member.name)
                elif ext == "txt" and not match["frame"]:
                    captions[key] = tar.extractfile(member).read().decode("utf-8").strip()
    except (tarfile.TarError, OSError, UnicodeDecodeError) as e:
        raise ClipLineError(f"cannot read the shard {uri}: {type(e).__name__}: {e}",
                            "check that it is a complete WebDataset tar") from e
    return [Item(uri, key, tuple(sorted(members)), captions[key])
            for key, members in images.items() if captions.get(key)]


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
    start = 0
    while start < len(refs):
        shard = refs[start][0]
        end = start
        while end < len(refs) and refs[end][0] == shard:
            end += 1
        yield from _read_from_tar(shard, [member for _, member in refs[start:end]])
        start = end


def _read_from_tar(uri: str, members: list[str]) -> list[bytes]:
    wanted = set(members)
    found: dict[str, bytes] = {}
    fs, path = storage.filesystem(uri)
    with fs.open(path, "rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
        for member in tar:
            if member.name in wanted:
                found[member.name] = tar.extractfile(member).read()
                if len(found) == len(wanted):
                    break
    missing = wanted - found.keys()
    if missing:
        raise ClipLineError(f"{len(missing)} members vanished from {uri} since it was indexed, e.g. {min(missing)}",
                            "do not rewrite shards while a distance run reads them")
    return [found[member] for member in members]
