"""Where an evaluation image's bytes come from: a member of a WebDataset tar, a file, or an http(s) URL.

Tars are read twice (both through pipelines.shard_format): once for their small
members (labels, captions) when the dataset is checked, skipping image data,
then once more streaming the images in member order while they are embedded,
so no split is ever held in memory.
"""

from __future__ import annotations

import itertools
import logging
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from clipline.pipelines import storage
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.shard_format import stream_members

log = logging.getLogger(__name__)

URL_TIMEOUT_S = 30


@dataclass(frozen=True)
class ImageSource:
    """Where one sample's image lives: `member` of the tar at `uri`, or the file / URL `uri` itself."""

    uri: str
    member: str | None = None

    @property
    def via(self) -> str:
        if self.member is not None:
            return "tar"
        return "url" if self.uri.startswith(("http://", "https://")) else "file"


def _tar_images(sources: Sequence[tuple[int, ImageSource]]) -> Iterator[tuple[int, bytes | None]]:
    wanted = {source.member: index for index, source in sources}
    for member, data in stream_members(sources[0][1].uri, list(wanted)):
        yield wanted.pop(member), data
    yield from ((index, None) for index in wanted.values())  # vanished since indexing


def _file_images(sources: Sequence[tuple[int, ImageSource]]) -> Iterator[tuple[int, bytes | None]]:
    for index, source in sources:
        try:
            yield index, storage.read_bytes(source.uri)
        except (OSError, ClipLineError) as e:
            log.warning("cannot read %s: %s", source.uri, e)
            yield index, None


def _url_images(sources: Sequence[tuple[int, ImageSource]]) -> Iterator[tuple[int, bytes | None]]:
    for index, source in sources:
        try:
            with urllib.request.urlopen(source.uri, timeout=URL_TIMEOUT_S) as response:
                yield index, response.read()
        except (OSError, ValueError) as e:
            log.warning("cannot fetch %s: %s", source.uri, e)
            yield index, None


READERS: dict[str, Callable[[Sequence[tuple[int, ImageSource]]], Iterator[tuple[int, bytes | None]]]] = {
    "tar": _tar_images, "file": _file_images, "url": _url_images,
}


def _run_key(item: tuple[int, ImageSource]) -> tuple[str, str]:
    source = item[1]
    return source.via, source.uri if source.via == "tar" else ""


def read_images(sources: Sequence[ImageSource]) -> Iterator[tuple[int, bytes | None]]:
    """(index into `sources`, image bytes or None when unreadable) for every source, a tar read once per run
    of consecutive samples from it."""
    for (via, _), group in itertools.groupby(enumerate(sources), key=_run_key):
        yield from READERS[via](list(group))
