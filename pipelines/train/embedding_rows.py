"""Token-embedding gradients exchanged row by row: only the rows of tokens some worker's batch holds.

A text tower's token embedding is most of a small CLIP's parameters (clipline-tiny: 6.3M of 7.2M, 25M of
ViT-B/32's 151M), and its gradient is zero outside the rows of the tokens looked up in the step. DDP all-reduces
it whole every step all the same. Here DDP leaves it out; after the backward pass the workers agree on the rows
any of them looked up (a vocabulary-sized mask, all-reduced with MAX) and all-reduce those rows alone, divided by
the world size as DDP divides: the same gradients, from at most world x batch x context length of the rows
(clipline-tiny, 3 workers x 64 x 32 tokens: at most 6,144 of 49,408 rows, 12%, plus a 49 KB mask;
bench/train_ddp.py measures the CPU this saves). Rows no worker looked up are zero on every worker, so their mean
is the zero each already holds.

Only a parameter whose gradient comes from nothing but looking up the step's tokens may be exchanged this way
(a training kind lists them in TrainingModel.token_embeddings): a weight tied to an output layer has a gradient
in every row.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)

TOKEN_EMBEDDING = "token_embedding"  # open_clip's text towers (CLIP, CustomTextCLIP, CoCa) name theirs so


def token_embeddings(model: nn.Module) -> tuple[str, ...]:
    """Names of `model`'s open_clip token-embedding weights: the only use of each is looking up the text's tokens."""
    return tuple(f"{name}.weight" for name, module in model.named_modules()
                 if name.rsplit(".", 1)[-1] == TOKEN_EMBEDDING and isinstance(module, nn.Embedding))


class EmbeddingRows:
    """Exchanges the gradients of `params` (token embeddings, rows = token ids) between the workers, used rows
    only. Build it with `prepare` before the model is wrapped in DDP; call it after the backward pass(es) of a
    step with the token batches of the step, before the optimizer steps."""

    def __init__(self, params: Sequence[nn.Parameter], world_size: int):
        self.params, self.world_size = list(params), world_size

    @classmethod
    def prepare(cls, model: nn.Module, names: Sequence[str], world_size: int) -> EmbeddingRows | None:
        """Tell DDP to leave `names` to this exchange, and give every worker rank 0's values of them (DDP does
        so at wrapping for the parameters it keeps); None when there is nothing to exchange."""
        named = dict(model.named_parameters())
        trained = [name for name in names if named[name].requires_grad]
        if world_size < 2 or not trained:
            return None
        nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, trained)
        with torch.no_grad():
            for name in trained:
                dist.broadcast(named[name].data, src=0)
        log.info("token embeddings exchanged by used rows: %s", ", ".join(trained))
        return cls([named[name] for name in trained], world_size)

    def __call__(self, token_batches: Sequence[torch.Tensor]) -> None:
        for param in self.params:
            used = torch.zeros(param.shape[0], dtype=torch.uint8, device=param.device)
            for tokens in token_batches:
                used[tokens.reshape(-1).to(param.device)] = 1
            dist.all_reduce(used, op=dist.ReduceOp.MAX)
            rows = used.nonzero().squeeze(1)
            grad = param.grad if param.grad is not None else torch.zeros_like(param)
            summed = grad.index_select(0, rows)
            dist.all_reduce(summed)
            grad.index_copy_(0, rows, summed.div_(self.world_size))
            param.grad = grad
