"""Training metrics into the results store: rank 0 writes, values averaged across workers where they differ."""

from __future__ import annotations

import time

import torch
import torch.distributed as dist

from clipline.pipelines.compute import current_node
from clipline.pipelines.config import TrainConfig
from clipline.pipelines.store.writer import ResultsWriter, now


def record_worker(config: TrainConfig, run_id: str, rank: int, world: int, accum_freq: int, from_step: int) -> None:
    """This worker's row of `train_workers` for this attempt: where it runs and from which step."""
    with ResultsWriter(config.store) as store:
        store.append("train_workers", [{"run_id": run_id, "rank": rank, "world_size": world, "accum_freq": accum_freq,
                                        "from_step": from_step, "node": current_node(), "started_at": now()}])


def _all_reduce(values: list[float], op=dist.ReduceOp.SUM) -> list[float]:
    if not (dist.is_available() and dist.is_initialized()):
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor, op=op)
    return tensor.tolist()


class MetricsLog:
    """Every `log_every` steps: loss, lr, logit scale, samples/s, data time, skipped samples, epoch, and the
    workers running and their accumulation (elastic training changes both)."""

    def __init__(self, config: TrainConfig, run_id: str, rank: int, world_size: int, accum_freq: int | None = None):
        self.config, self.run_id, self.rank, self.world = config, run_id, rank, world_size
        self.accum_freq = accum_freq or config.accum_freq  # raised by elastic training when workers are lost
        self.writer = ResultsWriter(config.store) if rank == 0 else None
        self._window = {"loss": 0.0, "data_time": 0.0, "skipped": 0.0, "steps": 0}
        self._window_start = time.perf_counter()
        self.skipped_total = 0

    def record(self, step: int, loss: float, optimizer, model, data_time: float, skipped: int, epoch: int) -> None:
        window = self._window
        window["loss"] += loss
        window["data_time"] += data_time
        window["skipped"] += skipped
        window["steps"] += 1
        if step % self.config.log_every == 0 or step == 1:
            self._flush(step, optimizer, model, epoch)

    def _flush(self, step: int, optimizer, model, epoch: int) -> None:
        window, steps = self._window, self._window["steps"]
        loss_sum, data_sum, skipped = _all_reduce([window["loss"], window["data_time"], window["skipped"]])
        elapsed = time.perf_counter() - self._window_start
        self.skipped_total += int(skipped)
        values = {
            "loss": loss_sum / (steps * self.world),
            "lr": optimizer.param_groups[0]["lr"],
            "samples_per_s": steps * self.config.batch_size * self.accum_freq * self.world / elapsed,
            "data_time_s": data_sum / (steps * self.world),
            "skipped_samples": float(self.skipped_total),
            "epoch": float(epoch),
            "workers": float(self.world),
            "accum_freq": float(self.accum_freq),
        }
        if hasattr(model, "logit_scale"):  # contrastive models learn a temperature
            values["logit_scale"] = model.logit_scale.exp().item()
        self._window = {"loss": 0.0, "data_time": 0.0, "skipped": 0.0, "steps": 0}
        self._window_start = time.perf_counter()
        self._write(step, values)

    def _write(self, step: int, values: dict[str, float]) -> None:
        if self.writer:
            at = now()
            self.writer.append("train_metrics", [{"run_id": self.run_id, "step": step, "name": k, "value": v,
                                                  "time": at} for k, v in values.items()])
            self.writer.flush()

    def validation(self, step: int, scores: dict[str, float]) -> None:
        self._write(step, {f"val_{k}": v for k, v in scores.items()})

    def checkpoint(self, step: int, samples_seen: int, uri: str) -> None:
        if self.writer:
            self.writer.append("checkpoints", [{"run_id": self.run_id, "step": step, "samples_seen": samples_seen,
                                                "uri": uri, "model": self.config.model, "time": now()}])
            self.writer.flush()

    def close(self) -> None:
        if self.writer:
            self.writer.flush()
