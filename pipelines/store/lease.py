"""A lease on one table of the results store, so that only one compaction runs on it at a time.

Two compactions at once would each merge the same files into a compacted file
of their own, and each would hide only its own inputs: every row twice. The
lease is a small JSON file (owner, expiry) created only if absent
(`storage.create_exclusive`: a hard link locally, a conditional PUT on S3).
The loser waits for it; a lease past its expiry (its holder was killed) is
broken. Two processes breaking the same expired lease at the same instant
could both win: expiry is a recovery path, not the normal one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator

from clipline.pipelines import storage
from clipline.pipelines.errors import ClipLineError

log = logging.getLogger(__name__)

LEASE_FILE = "_compaction.lease"
TTL_S = 3600.0  # longer than any compaction of one table; a holder killed by SIGKILL blocks others this long
POLL_S = 0.5


class LeaseHeld(ClipLineError):
    """Another process held the lease for longer than this one would wait."""


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _expired(uri: str) -> bool:
    try:
        return json.loads(storage.read_text(uri))["expires"] < time.time()
    except FileNotFoundError:
        return False  # released meanwhile: try again
    except (ValueError, KeyError):
        return True  # unreadable: not a lease this code wrote


@contextlib.contextmanager
def lease(folder_uri: str, wait_s: float = TTL_S, ttl_s: float = TTL_S) -> Iterator[None]:
    """Hold `<folder>/_compaction.lease` for the block, waiting up to `wait_s` for another holder."""
    uri = storage.join(folder_uri, LEASE_FILE)
    owner = _owner()
    deadline = time.monotonic() + wait_s
    waited = False
    while not storage.create_exclusive(uri, json.dumps({"owner": owner, "expires": time.time() + ttl_s}).encode()):
        if _expired(uri):
            log.warning("breaking the expired lease %s", uri)
            storage.remove(uri)
            continue
        if time.monotonic() >= deadline:
            raise LeaseHeld(f"another compaction holds {uri}",
                            "wait for it to finish; if its process is gone, delete that file")
        if not waited:
            log.info("waiting for another compaction's lease on %s", folder_uri)
            waited = True
        time.sleep(POLL_S)
    try:
        yield
    finally:
        storage.remove(uri)
