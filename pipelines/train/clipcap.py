"""The ClipCap training kind's parts: the model around a CLIP, its checkpoint files, and caption-loss validation.

A checkpoint holds the CLIP in open_clip's files (unchanged: it stays
open_clip-loadable), the mapping and the LM in safetensors files of their own,
and `clipcap_config.json` (plus a pretrained LM's tokenizer files), so
`load_clipcap(uri)` rebuilds it in one call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from clipline.pipelines.config.captioner import CaptionerTrainConfig
from clipline.pipelines.data.loader import Decode
from clipline.pipelines.models.caption_lm import IGNORE, CaptionTokens, PretrainedTokens, build_lm
from clipline.pipelines.models.clipcap import (
                                               CONFIG_FILE,
                                               LM_WEIGHTS,
                                               MAPPING_WEIGHTS,
                                               TOKENIZER_FOLDER,
                                               CaptionLoss,
                                               ClipCap,
                                               ClipCapConfig,
                                               MappingSpec,
)
from clipline.pipelines.train.validate import _nothing_to_validate, _outputs


@dataclass
class ClipCapParts:
    model: ClipCap
    tokens: CaptionTokens
    weight_files: dict[str, torch.nn.Module]  # beside open_clip's file, which the caller names
    files: dict[str, bytes]  # other files each checkpoint carries


def assemble_clipcap(clip: torch.nn.Module, embed_dim: int, config: CaptionerTrainConfig) -> ClipCapParts:
    """A ClipCap of `config` around `clip` (seeded alike on every worker), with what its checkpoints hold."""
    torch.manual_seed(config.seed + 1)
    built = build_lm(config.lm, config.prefix_length + config.max_caption_tokens)
    lm_config = built.lm.config
    spec = MappingSpec(embed_dim, lm_config.n_embd, config.prefix_length, config.mapping_layers, lm_config.n_head)
    saved = ClipCapConfig(config.mapping, spec, lm_config.to_dict(), built.tokenizer.kind, config.max_caption_tokens)
    model = saved.build(clip, built.lm)
    if config.freeze_lm:
        model.lm.requires_grad_(False)
    files = {CONFIG_FILE: saved.to_json().encode()}
    if isinstance(built.tokenizer, PretrainedTokens):
        files.update({f"{TOKENIZER_FOLDER}/{name}": data for name, data in built.tokenizer.files().items()})
    return ClipCapParts(model, CaptionTokens(built.tokenizer, config.max_caption_tokens),
                        {MAPPING_WEIGHTS: model.mapping, LM_WEIGHTS: model.lm}, files)


@torch.no_grad()
def validate_captions(model: torch.nn.Module, config: CaptionerTrainConfig, decode: Decode, tokenizer,
                      device) -> dict[str, float]:
    """The caption loss over up to `val_batches` validation batches, each token weighed alike."""
    loss, num_tokens, num_samples = 0.0, 0, 0
    for out in _outputs(model, config, decode, tokenizer, device):
        counted = int((out["labels"] != IGNORE).sum())
        loss += CaptionLoss()(out["logits"], out["labels"]).item() * counted
        num_tokens += counted
        num_samples += len(out["labels"])
    if not num_samples:
        return _nothing_to_validate(config)
    return {"caption_loss": loss / num_tokens, "num_samples": float(num_samples)}
