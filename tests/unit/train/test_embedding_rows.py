"""Token embeddings exchanged by used rows (pipelines/train/embedding_rows.py): what each training kind lists
holds a gradient only in the rows of the step's tokens, and the exchange gives every worker the mean of all
workers' gradients, as DDP would, after giving every worker rank 0's weights."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from clipline.pipelines.config import TrainConfig, VideoTrainConfig
from clipline.pipelines.train.embedding_rows import EmbeddingRows
from clipline.pipelines.train.kinds import TRAINING_KINDS, VideoText
from clipline.pipelines.train.optim import build_optimizer
from clipline.pipelines.train.step import build_loss, train_step
from support.captioning import coca_config

VOCAB, WIDTH = 40, 3


def _untouched_rows_are_zero(model: nn.Module, names: tuple[str, ...], tokens: torch.Tensor) -> None:
    params = dict(model.named_parameters())
    assert names, "the kind lists no token embedding"
    for name in names:
        grad = params[name].grad
        unused = torch.ones(grad.shape[0], dtype=torch.bool)
        unused[tokens.reshape(-1)] = False
        assert grad[~unused].abs().sum() > 0, name  # the looked-up rows learn
        assert torch.count_nonzero(grad[unused]) == 0, name


@pytest.mark.parametrize("kind", ["image-text", "coca"])
def test_token_embeddings_have_gradients_only_in_the_rows_of_the_steps_tokens(batch, tmp_path, kind):
    cfg = {"image-text": lambda: TrainConfig(data="unused.tar", output_uri="unused", steps=1, augment=False),
           "coca": lambda: coca_config(tmp_path, tmp_path / "run")}[kind]()
    built = TRAINING_KINDS[kind].build(cfg)
    size = built.open_clip_config["model_cfg"]["vision_cfg"]["image_size"]
    images = nn.functional.interpolate(batch[0][:2], size=size)
    tokens = built.tokenizer(["a handwritten 3", "the digit seven"])
    optimizer = build_optimizer(built.model, cfg, built.lr_scale)
    train_step(built.model, build_loss(cfg, 0, 1), optimizer, None, [(images, tokens)], cfg, torch.device("cpu"))
    _untouched_rows_are_zero(built.model, built.token_embeddings, tokens)


def test_video_text_lists_its_clips_token_embedding():
    built = VideoText().build(VideoTrainConfig(data="clips.tar", output_uri="run", steps=1))
    assert built.token_embeddings == ("clip.token_embedding.weight",)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.token_embedding = nn.Embedding(VOCAB, WIDTH)
        self.head = nn.Linear(WIDTH, 1)

    def forward(self, tokens):
        return self.head(self.token_embedding(tokens)).pow(2).sum()


TOKENS = {0: [[1, 2, 3, 3], [2, 2, 9, 1]], 1: [[3, 4, 5, 5], [30, 4, 0, 0]]}  # rows 9, 1 rank 0's; 30, 5 rank 1's


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(rank)  # every rank starts from other weights: the exchange must give them rank 0's
    model = Tiny()
    weights = [torch.empty(VOCAB, WIDTH) for _ in range(world)]
    rows = EmbeddingRows.prepare(model, ("token_embedding.weight",), world)
    dist.all_gather(weights, model.token_embedding.weight.detach().clone())
    ddp = nn.parallel.DistributedDataParallel(model)
    tokens = torch.tensor(TOKENS[rank])
    ddp(tokens[:1]).backward()  # two micro-batches, as accumulation runs them
    ddp(tokens[1:]).backward()
    local = [torch.empty(VOCAB, WIDTH) for _ in range(world)]
    dist.all_gather(local, model.token_embedding.weight.grad.clone())  # before the exchange: each rank's own
    rows([tokens[:1], tokens[1:]])
    if rank == 0:
        torch.save({"weights": weights, "local": local, "exchanged": model.token_embedding.weight.grad,
                    "head": model.head.weight.grad}, out)
    dist.destroy_process_group()


def test_exchanged_rows_are_the_mean_over_workers_and_weights_start_as_rank_0s(tmp_path):
    out = str(tmp_path / "rows.pt")
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), out), nprocs=2, join=True)
    got = torch.load(out)
    assert torch.equal(got["weights"][0], got["weights"][1])
    expected = (got["local"][0] + got["local"][1]) / 2
    # Each rank looked up rows the other did not, and DDP left the embedding to the exchange: had it all-reduced
    # it in the backward pass (its private ignore list a no-op), the ranks' own gradients would be equal here.
    assert not torch.equal(got["local"][0], got["local"][1]), "DDP all-reduced the token embedding itself"
    assert torch.allclose(got["exchanged"], expected, rtol=0, atol=1e-6)
    assert torch.count_nonzero(expected[[1, 2, 3, 4, 5, 9, 30, 0]].abs().sum(1)) == 8
    assert torch.count_nonzero(got["exchanged"][[6, 7, 8, 10, 39]]) == 0


def test_one_worker_or_frozen_embeddings_need_no_exchange():
    model = Tiny()
    assert EmbeddingRows.prepare(model, ("token_embedding.weight",), 1) is None
    model.token_embedding.requires_grad_(False)
    assert EmbeddingRows.prepare(model, ("token_embedding.weight",), 2) is None
    assert not hasattr(model, "_ddp_params_and_buffers_to_ignore")
