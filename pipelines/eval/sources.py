"""Where an evaluation image's bytes come from: a member of a WebDataset tar, a file, or an http(s) URL.

Tars are read twice: once for their small members (labels, captions) when the
dataset is checked, skipping image data, then once more streaming the images
in member order while they are embedded, so no split is ever held in memory.
"""

from __future__ import annotations

import itertools
import logging
import re
import tarfile
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from pipelines import storage
from pipelines.errors import ClipLineError

log = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "bmp", "gif")
TEXT_EXTS = ("cls", "txt", "json")  # read at indexing time; everything else is skipped
URL_TIMEOUT_S = 30
# webdataset's own rule: the key is the path up to the first dot of the file name.
_KEY_EXT = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")


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


@dataclass(frozen=True)
class TarSample:
    key: str
    image_member: str
    texts: dict[str, str]  # extension -> decoded text (cls, txt, json)


def _open_tar(uri: str):
    fs, path = storage.filesystem(uri)
    return fs.open(path, "rb")


def index_tar(uri: str) -> list[TarSample]:
    """The samples of a WebDataset tar, in member order, with their text members read; image data is skipped."""
    images: dict[str, str] = {}
    texts: dict[str, dict[str, str]] = {}
    try:
        with _open_tar(uri) as f, tarfile.open(fileobj=f, mode="r:") as tar:
            for member in tar:
                match = _KEY_EXT.match(member.name) if member.isfile() else None
                if not match:
                    continue
                key, ext = match.group(1), match.group(2).lower()
                if ext in IMAGE_EXTS:
                    images.setdefault(key, member.name)
                elif ext in TEXT_EXTS:
                    texts.setdefault(key, {})[ext] = tar.extractfile(member).read().decode("utf-8")
    except (tarfile.TarError, OSError, UnicodeDecodeError) as e:
        raise ClipLineError(f"cannot read the tar {uri}: {type(e).__name__}: {e}",
                            "check that it is a complete WebDataset tar") from e
    return [TarSample(key, member, texts.get(key, {})) for key, member in images.items()]


def _tar_images(sources: Sequence[tuple[int, ImageSource]]) -> Iterator[tuple[int, bytes | None]]:
    wanted = {source.member: index for index, source in sources}
    with _open_tar(sources[0][1].uri) as f, tarfile.open(fileobj=f, mode="r:") as tar:
        for member in tar:
            if member.name in wanted:
                yield wanted.pop(member.name), tar.extractfile(member).read()
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
