"""The training stream: batches epoch after epoch, and the exact position reached, for mid-epoch resume.

A worker's data is a few streams (one per DataLoader process), each a
deterministic function of the seed, epoch, rank and stream: its shard order,
its shuffle buffer's seed, and its resampling draws. The DataLoader takes
batches from the streams in turn. So the position after any batch is the
epoch, the samples each stream has taken, and the stream whose turn is next.
A resumed worker rebuilds the streams, passes over the samples taken (read, not
decoded) and starts the turn-taking at the same stream: it then sees exactly
the batches an uninterrupted run sees.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from clipline.pipelines.data.loader import (
    Batch,
    Decode,
    LoaderSpec,
    StreamStart,
    make_loader,
    num_streams,
    stream_shards,
)
from clipline.pipelines.errors import ClipLineError

log = logging.getLogger(__name__)


@dataclass
class DataPosition:
    """Where a training worker's data stands after the last batch it took."""

    epoch: int = 0
    consumed: list[int] = field(default_factory=list)  # samples each stream has taken this epoch
    next_stream: int = 0
    shards: list[str] = field(default_factory=list)  # each stream's current shard (for the record)
    shard_order: list[list[str]] = field(default_factory=list)  # each stream's shards this epoch (unresampled)

    def start(self) -> StreamStart:
        return StreamStart(tuple(self.consumed), self.next_stream)

    def took(self, batch: Batch, streams: int) -> None:
        self.consumed = self.consumed or [0] * streams
        self.shards = self.shards or [""] * streams
        self.consumed[batch.stream] = batch.consumed
        self.shards[batch.stream] = batch.shard
        self.next_stream = (batch.stream + 1) % streams

    def state(self) -> dict:
        return {"epoch": self.epoch, "consumed": list(self.consumed), "next_stream": self.next_stream,
                "shards": list(self.shards), "shard_order": [list(s) for s in self.shard_order]}

    @classmethod
    def from_state(cls, state: dict) -> DataPosition:
        return cls(int(state["epoch"]), [int(c) for c in state["consumed"]], int(state["next_stream"]),
                   list(state["shards"]), [list(s) for s in state["shard_order"]])


def _shard_order(spec: LoaderSpec, epoch: int) -> list[list[str]]:
    return [] if spec.resampled else [stream_shards(spec, epoch, s) for s in range(num_streams(spec))]


def _check_same_shards(spec: LoaderSpec, position: DataPosition) -> None:
    if position.shard_order and position.shard_order != _shard_order(spec, position.epoch):
        raise ClipLineError("the checkpoint's data position does not fit these shards: their order differs from "
                            "the saved one", "resume with the --data, --seed, --shuffle and --data-workers the run "
                            "started with, or start a new run from it with --init")


def endless_batches(spec: LoaderSpec, decode: Decode, tokenizer: Callable,
                    position: DataPosition) -> Iterator[tuple[int, Batch]]:
    """(epoch, batch) forever from `position`, which is kept up to date with each batch taken."""
    streams = num_streams(spec)
    _check_same_shards(spec, position)
    while True:
        fresh = not any(position.consumed)
        position.shard_order = _shard_order(spec, position.epoch)
        produced = 0
        for batch in make_loader(spec, position.epoch, decode, tokenizer, position.start()):
            position.took(batch, streams)
            produced += 1
            yield position.epoch, batch
        if produced == 0 and fresh:
            raise ClipLineError(f"no batch of {spec.batch_size} readable samples in the shards of worker "
                                f"{spec.rank} (e.g. {spec.urls[spec.rank]})",
                                "check that the shards are readable WebDataset tars, or lower --batch-size")
        log.debug("epoch %d done after %d batches", position.epoch, produced)
        position.epoch, position.consumed, position.next_stream, position.shards = position.epoch + 1, [], 0, []
