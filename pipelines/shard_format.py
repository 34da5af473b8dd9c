"""The shard format, the contract between every stage: file names, sample keys, tar members, reading back.

A dataset folder holds shards `{id:05d}.tar`, each with `{id:05d}.parquet` (a
status row per input row, failures included) and `{id:05d}_stats.json`, written
last as the shard's commit marker, plus `sizes.json` (tar name -> samples) so
open_clip's trainer reads the folder as it is. In a tar, a sample is members
`key.<ext>`: an image (`key.jpg|png|webp`, ...) or a video's frames
(`key.f000.jpg`, `key.f001.jpg`, ...), its caption `key.txt`, its metadata
`key.json`; clip_benchmark's layout adds `key.cls`. The key is the member name
up to the first dot of its file name, as webdataset splits it, so a key holds no
dot. The crawl writer, the training loader, evaluation, distances and curation
all read and write shards through this module.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from clipline.pipelines import storage
from clipline.pipelines.errors import ClipLineError

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "bmp", "gif")  # what Pillow decodes and clip_benchmark's layouts use
TEXT_EXTS = ("txt", "json", "cls")  # caption, metadata, class index
SIZES_FILE = "sizes.json"  # open_clip's trainer reads dataset sizes from here
# webdataset's rule (its `base_plus_ext`): the key runs to the first dot of the file name; the rest is the extension.
_MEMBER = re.compile(r"^(?P<key>(?:.*/|)[^./]+)[.](?P<ext>[^/]*)$")
_FRAME = re.compile(rf"f(?P<index>\d+)[.](?:{'|'.join(IMAGE_EXTS)})")  # a video frame's extension: f000.jpg


@dataclass(frozen=True)
class ShardFiles:
    """The three files of shard `shard_id` in a dataset folder; `stats` is written last."""

    tar: str
    parquet: str
    stats: str

    @classmethod
    def of(cls, output_uri: str, shard_id: int) -> ShardFiles:
        stem = storage.join(output_uri, f"{shard_id:05d}")
        return cls(f"{stem}.tar", f"{stem}.parquet", f"{stem}_stats.json")


def make_key(shard_id: int, index: int, samples_per_shard: int) -> str:
    """img2dataset's key: zero-padded shard id then index in shard (no dots, sorts in input order)."""
    return f"{shard_id:05d}{index:0{len(str(samples_per_shard - 1))}d}"


def member_name(key: str, ext: str) -> str:
    """The tar member of one file of a sample; a key with a dot or a slash is refused (webdataset would split it)."""
    if not key or "." in key or "/" in key:
        raise ValueError(f"sample key {key!r} is empty or holds a dot or a slash; WebDataset would split it")
    return f"{key}.{ext}"


def frame_ext(index: int, image_ext: str) -> str:
    """The extension of a video's frame `index`: `f000.jpg`, so the member is `key.f000.jpg`."""
    return f"f{index:03d}.{image_ext}"


def split_member(name: str) -> tuple[str, str] | None:
    """(key, extension in lower case) of a member name, or None when it has no extension."""
    match = _MEMBER.match(name)
    return (match["key"], match["ext"].lower()) if match else None


def frame_index(ext: str) -> int | None:
    """The frame number of a video frame's extension (`f012.jpg` -> 12), else None."""
    match = _FRAME.fullmatch(ext)
    return int(match["index"]) if match else None


def is_image_ext(ext: str) -> bool:
    """An image's extension, or a video frame's."""
    return ext in IMAGE_EXTS or frame_index(ext) is not None


def sample_images(sample: dict[str, bytes]) -> list[bytes]:
    """A decoded WebDataset sample's image: the single image, else the frames in time order."""
    single = next((sample[e] for e in IMAGE_EXTS if e in sample), None)
    if single is not None:
        return [single]
    return sample_frames(sample)


def sample_frames(sample: dict[str, bytes]) -> list[bytes]:
    """A decoded WebDataset sample's video frames, in time order (empty when it has none)."""
    numbered = sorted((index, ext) for ext in sample
                      if isinstance(ext, str) and (index := frame_index(ext)) is not None)
    return [sample[ext] for _, ext in numbered]


@dataclass(frozen=True)
class TarSample:
    """One sample of a tar as indexed: its image members (an image, or a video's frames in order) and texts."""

    key: str
    images: tuple[str, ...]
    texts: dict[str, str]  # extension -> decoded text, for the text extensions asked for

    @property
    def caption(self) -> str | None:
        text = self.texts.get("txt", "").strip()
        return text or None


def _image_order(ext: str) -> tuple[int, int]:
    index = frame_index(ext)
    return (1, index) if index is not None else (0, 0)  # a single image first, then frames by number


def _open(uri: str):
    fs, path = storage.filesystem(uri)
    return fs.open(path, "rb")


def index_tar(uri: str, text_exts: Iterable[str] = TEXT_EXTS) -> list[TarSample]:
    """Every sample of a tar that has an image (or frames), in member order, with its text members read;
    image data is skipped, so a tar is indexed without holding it."""
    wanted_texts = set(text_exts)
    images: dict[str, list[str]] = {}
    texts: dict[str, dict[str, str]] = {}
    try:
        with _open(uri) as f, tarfile.open(fileobj=f, mode="r:") as tar:
            for member in tar:
                parts = split_member(member.name) if member.isfile() else None
                if parts is None:
                    continue
                key, ext = parts
                if is_image_ext(ext):
                    images.setdefault(key, []).append(ext)
                elif ext in wanted_texts:
                    texts.setdefault(key, {})[ext] = tar.extractfile(member).read().decode("utf-8")
    except (tarfile.TarError, OSError, UnicodeDecodeError) as e:
        raise ClipLineError(f"cannot read the tar {uri}: {type(e).__name__}: {e}",
                            "check that it is a complete WebDataset tar") from e
    return [TarSample(key, tuple(f"{key}.{ext}" for ext in sorted(exts, key=_image_order)), texts.get(key, {}))
            for key, exts in images.items()]


def stream_members(uri: str, wanted: Iterable[str]) -> Iterator[tuple[str, bytes]]:
    """(member, bytes) of the wanted members, in tar order, in one pass that stops once all are read."""
    left = set(wanted)
    if not left:
        return
    with _open(uri) as f, tarfile.open(fileobj=f, mode="r:") as tar:
        for member in tar:
            if member.name in left:
                left.discard(member.name)
                yield member.name, tar.extractfile(member).read()
                if not left:
                    return


def read_members(uri: str, members: Sequence[str]) -> list[bytes]:
    """The bytes of each member, in the order asked; a member missing from the tar is an error naming it."""
    found = dict(stream_members(uri, members))
    missing = set(members) - found.keys()
    if missing:
        raise ClipLineError(f"{len(missing)} members vanished from {uri} since it was indexed, e.g. {min(missing)}",
                            "do not rewrite shards while they are being read")
    return [found[member] for member in members]


def read_samples(uri: str) -> dict[str, dict[str, bytes]]:
    """Every sample of a (small) tar held in memory: key -> {extension: bytes}."""
    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(fileobj=io.BytesIO(storage.read_bytes(uri))) as tar:
        for member in tar:
            parts = split_member(member.name) if member.isfile() else None
            if parts is not None:
                samples.setdefault(parts[0], {})[parts[1]] = tar.extractfile(member).read()
    return samples


def sizes_json(successes_by_shard: dict[int, int]) -> bytes:
    """The `sizes.json` of a dataset folder: tar name -> sample count."""
    sizes = {f"{shard_id:05d}.tar": n for shard_id, n in sorted(successes_by_shard.items())}
    return json.dumps(sizes).encode("utf-8")


def read_sizes(folder_uri: str) -> dict[str, int]:
    """The folder's `sizes.json` (tar name -> samples), or {} when it has none."""
    uri = storage.join(folder_uri, SIZES_FILE)
    return json.loads(storage.read_text(uri)) if storage.exists(uri) else {}
