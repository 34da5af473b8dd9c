"""Thumbnails of evaluation samples, read from where the evaluation read them (a tar member or a file)."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence

from PIL import Image, UnidentifiedImageError

from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.eval.readers import ReadOptions, read_raw
from clipline.pipelines.eval.sources import read_images
from clipline.pipelines.report import html

log = logging.getLogger(__name__)


def _thumbnail(data: bytes, size: int) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def thumbnails(dataset_spec: str, keys: Sequence[str], size: int = 160) -> dict[str, bytes]:
    """key -> PNG thumbnail for the `keys` of an evaluation dataset that can be read offline.

    Raises ClipLineError when the dataset itself cannot be read. Samples behind http(s) URLs are left out:
    the report is built offline, and a slow host would stall it.
    """
    _, raw = read_raw(dataset_spec, ReadOptions())
    sources = {s.key: s.source for s in raw.samples}
    wanted = [k for k in dict.fromkeys(keys) if k in sources and sources[k].via != "url"]
    found = {}
    for index, data in read_images([sources[k] for k in wanted]):
        if data is None:
            continue  # read_images has logged why
        try:
            found[wanted[index]] = _thumbnail(data, size)
        except (UnidentifiedImageError, OSError) as e:
            log.warning("sample %s of %s is no readable image: %s", wanted[index], dataset_spec, e)
    return found


def example_images(dataset_spec: str, rows: Sequence[dict]) -> tuple[dict[str, bytes], str]:
    """Thumbnails of the rows' samples, and a note for the page when there are none (empty when there are)."""
    try:
        images = thumbnails(dataset_spec, [r["key"] for r in rows])
    except ClipLineError as e:
        return {}, html.note(f"Thumbnails skipped: {e}")
    missing = "" if images else html.note(f"No thumbnails: the samples of {dataset_spec} are not readable files or "
                                          "tar members here.")
    return images, missing


def example_image(row: dict, images: dict[str, bytes]) -> str:
    """The row's thumbnail as an <img>, or nothing."""
    return html.png(images[row["key"]], row["key"], "thumb") if row["key"] in images else ""
