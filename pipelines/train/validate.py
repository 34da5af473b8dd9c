"""Validation during training, on held-out shards at each checkpoint.

Image-text: the CLIP loss and in-batch image->text / text->image recall@1.
Video-text: the CLIP loss, and text->video / video->text retrieval over all the
validation clips evaluated: recall@1/5/10 and median rank (CLIP4Clip's R@k, MdR).
Every sample counts, a last partial batch's too, and `num_samples` says how
many: when none could be read, validation says so instead of a figure.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch
from open_clip.loss import ClipLoss

from clipline.pipelines.config import TrainConfig
from clipline.pipelines.data.loader import Decode, LoaderSpec, expand_shards, make_loader

log = logging.getLogger(__name__)

RECALL_K = (1, 5, 10)


def _outputs(model: torch.nn.Module, config: TrainConfig, decode: Decode, tokenizer, device) -> Iterator[dict]:
    """The model's output dict for each of up to `val_batches` validation batches, in eval mode."""
    spec = LoaderSpec(expand_shards(config.val_data), config.batch_size, shuffle=0, data_workers=0,
                      drop_last=False)
    was_training = model.training
    model.eval()
    try:
        for number, batch in enumerate(make_loader(spec, 0, decode, tokenizer), start=1):
            yield model(batch.inputs.to(device), batch.tokens.to(device))
            if number == config.val_batches:
                break
    finally:
        model.train(was_training)


def _nothing_to_validate(config: TrainConfig) -> dict[str, float]:
    log.warning("validation: no readable sample in %s; no validation figure this time", config.val_data)
    return {"num_samples": 0.0}


def _clip_loss(out: dict) -> float:
    return ClipLoss()(out["image_features"], out["text_features"], out["logit_scale"]).item()


@torch.no_grad()
def validate(model: torch.nn.Module, config: TrainConfig, decode: Decode, tokenizer, device) -> dict[str, float]:
    """Over up to `val_batches` batches: the CLIP loss and image->text / text->image recall@1, each batch weighed
    by its samples."""
    totals = {"loss": 0.0, "image_to_text_r1": 0.0, "text_to_image_r1": 0.0}
    samples = 0
    for out in _outputs(model, config, decode, tokenizer, device):
        size = len(out["image_features"])
        totals["loss"] += _clip_loss(out) * size
        similarity = out["image_features"] @ out["text_features"].T
        target = torch.arange(size, device=similarity.device)
        totals["image_to_text_r1"] += (similarity.argmax(1) == target).float().sum().item()
        totals["text_to_image_r1"] += (similarity.argmax(0) == target).float().sum().item()
        samples += size
    if not samples:
        return _nothing_to_validate(config)
    return {**{k: v / samples for k, v in totals.items()}, "num_samples": float(samples)}


def rank_metrics(scores: torch.Tensor, prefix: str) -> dict[str, float]:
    """Recall@k and median rank (1 = best) of each query's own item, row i's being column i."""
    own = scores.diagonal().unsqueeze(1)
    ranks = (scores > own).sum(dim=1)  # 0-based; ties count in the query's favour
    metrics = {f"{prefix}_r{k}": (ranks < k).float().mean().item() for k in RECALL_K}
    metrics[f"{prefix}_median_rank"] = (ranks + 1).float().median().item()
    return metrics


@torch.no_grad()
def validate_retrieval(model: torch.nn.Module, config: TrainConfig, decode: Decode, tokenizer,
                       device) -> dict[str, float]:
    """Mean CLIP loss over the batches, and retrieval among all the clips of up to `val_batches` batches."""
    outs = list(_outputs(model, config, decode, tokenizer, device))
    if not outs:
        return _nothing_to_validate(config)
    videos = torch.cat([o["image_features"] for o in outs]).float()
    texts = torch.cat([o["text_features"] for o in outs]).float()
    scores = texts @ videos.T
    loss = sum(_clip_loss(o) * len(o["image_features"]) for o in outs) / len(videos)
    return {"loss": loss, "num_clips": float(len(videos)), "num_samples": float(len(videos)),
            **rank_metrics(scores, "text_to_video"), **rank_metrics(scores.T, "video_to_text")}
