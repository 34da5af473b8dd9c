"""The seam between the crawl and what it stores: a decoder turns a downloaded body into tar members.

Images and videos share the fetcher, the shard writer, resume and the status
table; only the decoder differs. A decoder is a callable with the status-row
columns it fills, so failed rows get the same columns (as nulls).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class SampleRejected(Exception):
    """A downloaded body that cannot become a stored sample; str(e) is the row's error_message."""


@dataclass(frozen=True)
class DecodedSample:
    members: dict[str, bytes]  # tar member extension -> bytes: {"jpg": ...} or {"f000.jpg": ..., ...}
    fields: dict  # status-row columns: width, height, original sizes, ...
    meta: dict | None = None  # extra keys for the sample's JSON only (frame timestamps, ...)


class SampleDecoder(Protocol):
    fields: tuple[str, ...]  # the status-row columns every row gets

    def __call__(self, body: bytes, row: dict) -> DecodedSample:
        """Decode one body; `row` is its input row (url, caption, extra columns such as start/end)."""
