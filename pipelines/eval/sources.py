"""Where an evaluation image's bytes come from: a member of a WebDataset tar, a file, or an http(s) URL.

Images behind http(s) URLs are downloaded by the crawler's fetcher: the same
size cap, time limit, redirect limit and private-address guard as a crawl.

Tars are read twice (both through pipelines.shard_format): once for their small
members (labels, captions) when the dataset is checked, skipping image data,
then once more streaming the images in member order while they are embedded,
so no split is ever held in memory.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from clipline.pipelines import storage
from clipline.pipelines.config import FetchConfig
from clipline.pipelines.crawl.fetcher import fetch_urls
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.shard_format import stream_members

log = logging.getLogger(__name__)

URL_BATCH = 64  # URLs downloaded at once; only one batch of bodies is held in memory


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


Sources = Sequence[tuple[int, ImageSource]]


def _tar_images(sources: Sources, fetch: FetchConfig) -> Iterator[tuple[int, bytes | None]]:
    wanted = {source.member: index for index, source in sources}
    for member, data in stream_members(sources[0][1].uri, list(wanted)):
        yield wanted.pop(member), data
    yield from ((index, None) for index in wanted.values())  # vanished since indexing


def _file_images(sources: Sources, fetch: FetchConfig) -> Iterator[tuple[int, bytes | None]]:
    for index, source in sources:
        try:
            yield index, storage.read_bytes(source.uri)
        except (OSError, ClipLineError) as e:
            log.warning("cannot read %s: %s", source.uri, e)
            yield index, None


def _url_images(sources: Sources, fetch: FetchConfig) -> Iterator[tuple[int, bytes | None]]:
    for start in range(0, len(sources), URL_BATCH):
        batch = sources[start:start + URL_BATCH]
        for (index, source), result in zip(batch, fetch_urls([s.uri for _, s in batch], fetch), strict=True):
            if not result.ok:
                log.warning("cannot fetch %s: %s", source.uri, result.error)
            yield index, result.body


READERS: dict[str, Callable[[Sources, FetchConfig], Iterator[tuple[int, bytes | None]]]] = {
    "tar": _tar_images, "file": _file_images, "url": _url_images,
}


def _run_key(item: tuple[int, ImageSource]) -> tuple[str, str]:
    source = item[1]
    return source.via, source.uri if source.via == "tar" else ""


def read_images(sources: Sequence[ImageSource], fetch: FetchConfig | None = None
                ) -> Iterator[tuple[int, bytes | None]]:
    """(index into `sources`, image bytes or None when unreadable) for every source, a tar read once per run
    of consecutive samples from it; URLs downloaded as `fetch` says (default: FetchConfig(), guard on)."""
    fetch = fetch or FetchConfig()
    for (via, _), group in itertools.groupby(enumerate(sources), key=_run_key):
        yield from READERS[via](list(group), fetch)
