"""Elastic training keeps the global contrastive batch: with fewer workers, accumulation rises by the lost factor,
and one step on the same samples gives the same loss and the same weights (#14)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from clipline.pipelines.config import TrainConfig
from clipline.pipelines.train.elastic import step_shape
from clipline.pipelines.train.embedding_rows import EmbeddingRows
from clipline.pipelines.train.kinds import ImageText
from clipline.pipelines.train.loop import DDP_OPTIONS
from clipline.pipelines.train.optim import build_optimizer
from clipline.pipelines.train.step import build_loss, train_step

BATCH = 16  # per worker per micro-batch


def config(workers: int, **overrides) -> TrainConfig:
    return TrainConfig(data="unused/{00000..00001}.tar", output_uri="unused", steps=1, batch_size=BATCH,
                       lr=1e-3, warmup=0, workers=workers, augment=False, **overrides)


def one_step(cfg: TrainConfig, rank: int, world: int, micro: list[tuple[torch.Tensor, torch.Tensor]]):
    """One optimizer step of the real training path; (the loss averaged over ranks, the gradients it applied; with
    2 workers DDP and the token embedding's exchange by rows have averaged them over the ranks, wrapped as the
    training loop wraps them). Gradients, not weights: AdamW's first step moves every weight by about lr whatever
    the gradient's scale, so weights would hide a gradient off by a factor."""
    built = ImageText().build(cfg)
    model = built.model
    rows = EmbeddingRows.prepare(model, built.token_embeddings, world)
    if world > 1:
        assert rows is not None  # clipline-tiny's token embedding takes the row exchange, not DDP's
        model = torch.nn.parallel.DistributedDataParallel(model, **DDP_OPTIONS)
    optimizer = build_optimizer(model, cfg, built.lr_scale)
    loss = train_step(model, build_loss(cfg, rank, world), optimizer, None, micro, cfg, torch.device("cpu"),
                      embedding_rows=rows)
    if world > 1:
        total = torch.tensor([loss])
        dist.all_reduce(total)
        loss = total.item() / world
    named = (model.module if world > 1 else model).named_parameters()
    return loss, {name: p.grad.detach().clone() for name, p in named if p.grad is not None}


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    cfg = config(world)
    images, tokens = torch.load(out + ".inputs")
    mine = slice(rank * BATCH, (rank + 1) * BATCH)  # rank r holds samples r*16..r*16+15, as gathered in rank order
    loss, grads = one_step(cfg, rank, world, [(images[mine], tokens[mine])])
    if rank == 0:
        torch.save((loss, grads), out)
    dist.destroy_process_group()


def test_one_worker_accumulating_twice_equals_two_workers(batch, tmp_path):
    images, tokens = batch
    out = str(tmp_path / "world2.pt")
    torch.save((images, tokens), out + ".inputs")
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), out), nprocs=2, join=True)
    loss2, grads2 = torch.load(out)

    shape = step_shape(config(2), world=1)  # the world shrank from 2 workers to 1
    assert shape.accum_freq == 2 and shape.global_batch == 2 * BATCH
    micro = [(images[i * BATCH:(i + 1) * BATCH], tokens[i * BATCH:(i + 1) * BATCH]) for i in range(shape.accum_freq)]
    loss1, grads1 = one_step(config(2, accum_freq=1), 0, 1, micro)

    assert loss1 == pytest.approx(loss2, abs=1e-5)
    assert grads1.keys() == grads2.keys() and "logit_scale" in grads1
    for name in grads1:
        assert torch.allclose(grads1[name], grads2[name], rtol=1e-4, atol=1e-7), name


@pytest.mark.parametrize(("workers", "accum", "world", "expected"), [
    (2, 1, 2, 1), (2, 1, 1, 2), (4, 2, 2, 4), (4, 1, 1, 4), (4, 1, 3, 2), (3, 2, 2, 3)])
def test_accumulation_rises_by_the_lost_factor(workers, accum, world, expected):
    shape = step_shape(config(workers, accum_freq=accum), world)
    assert shape.accum_freq == expected
    planned = workers * accum * BATCH
    assert planned <= shape.global_batch < planned + world * BATCH  # never smaller, at most one micro-batch round


def test_more_workers_than_planned_is_an_error():
    with pytest.raises(ValueError, match="3 workers running, more than --workers 2"):
        step_shape(config(2), 3)


def test_min_workers_must_lie_within_workers():
    with pytest.raises(ValueError, match="min_workers 3 must be between 1 and workers"):
        config(2, min_workers=3)
