"""Elastic training: when fewer workers than --workers run (a node was lost, `--min-workers` allows it), each
optimizer step still sees the same global contrastive batch.

The global batch is batch size x workers x accum freq. With `world` workers
running, accumulation rises by the lost factor (open_clip's feature-caching
accumulation, pipelines.train.step, keeps the loss the full batch's), so the
step counter, learning-rate schedule and loss continue unchanged
(tests/unit/train/test_elastic.py: 1 worker x 2 micro-batches gives 2 workers'
loss and gradients). When the running world does not divide --workers x accum
freq, accumulation is rounded up: the global batch grows by less than one
micro-batch per worker, and the log says so. Choose --workers and
--min-workers so that it divides (2 and 1, 4 and 2 with accum 2, ...) to keep it exact.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from clipline.pipelines.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepShape:
    """How one optimizer step is made with `world` workers running."""

    world: int
    accum_freq: int
    batch_size: int  # per worker per micro-batch

    @property
    def global_batch(self) -> int:
        return self.world * self.accum_freq * self.batch_size


def step_shape(config: TrainConfig, world: int) -> StepShape:
    """Accumulation for `world` running workers that keeps the configured global batch (rounded up)."""
    planned = max(config.workers, 1)
    if world > planned:
        raise ValueError(f"{world} workers running, more than --workers {planned}")
    accum = -(-config.accum_freq * planned // world)
    shape = StepShape(world, accum, config.batch_size)
    if world != planned:
        target = planned * config.accum_freq * config.batch_size
        log.warning("running on %d of %d workers: accumulating %d micro-batches per step (global batch %d%s)",
                    world, planned, accum, shape.global_batch,
                    "" if shape.global_batch == target else f", planned {target}")
    return shape
