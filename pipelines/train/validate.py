"""Validation during training: contrastive loss and in-batch retrieval recall@1 on held-out shards."""

from __future__ import annotations

import torch
from open_clip.loss import ClipLoss

from pipelines.config import TrainConfig
from pipelines.data.loader import LoaderSpec, expand_shards, make_loader


@torch.no_grad()
def validate(model: torch.nn.Module, config: TrainConfig, built, device: torch.device) -> dict[str, float]:
    """Mean over up to `val_batches` batches of the CLIP loss and image->text / text->image recall@1."""
    spec = LoaderSpec(expand_shards(config.val_data), config.batch_size, shuffle=0, data_workers=0)
    loss_fn = ClipLoss()
    was_training = model.training
    model.eval()
    totals = {"loss": 0.0, "image_to_text_r1": 0.0, "text_to_image_r1": 0.0}
    batches = 0
    for images, tokens, _ in make_loader(spec, 0, built.preprocess_val, built.tokenizer):
        out = model(images.to(device), tokens.to(device))
        totals["loss"] += loss_fn(out["image_features"], out["text_features"], out["logit_scale"]).item()
        similarity = out["image_features"] @ out["text_features"].T
        target = torch.arange(len(similarity), device=similarity.device)
        totals["image_to_text_r1"] += (similarity.argmax(1) == target).float().mean().item()
        totals["text_to_image_r1"] += (similarity.argmax(0) == target).float().mean().item()
        batches += 1
        if batches == config.val_batches:
            break
    model.train(was_training)
    return {k: v / max(batches, 1) for k, v in totals.items()}
