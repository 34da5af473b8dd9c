"""CoCa checkpoints as captioners: open_clip local-dir folders whose model config has a `multimodal_cfg`.

`clipline train --kind coca` writes them; open_clip loads them and its
`CoCa.generate` decodes: greedy is top-k sampling with k = 1, beam is its beam
search (one beam group: plain beam search), nucleus is top-p sampling under a
seeded generator, so the same seed gives the same captions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from clipline.pipelines.caption.captioner import CaptionerFormat, register
from clipline.pipelines.config.caption import GenerateConfig
from clipline.pipelines.models.registry import build_model
from clipline.pipelines.models.tokens import SpecialIds, decode, special_ids
from clipline.pipelines.train import checkpoint as ckpt

# open_clip's generate may end a caption only once it holds this many tokens, the start token included; its
# default of 5 would force a fourth word onto "the digit seven".
MIN_TOKENS = 2

DECODING: dict[str, Callable[[GenerateConfig], dict]] = {  # GenerateConfig.method -> CoCa.generate arguments
    "greedy": lambda o: {"generation_type": "top_k", "top_k": 1},
    "beam": lambda o: {"generation_type": "beam_search", "num_beams": o.num_beams, "num_beam_groups": 1},
    "nucleus": lambda o: {"generation_type": "top_p", "top_p": o.top_p, "temperature": o.temperature},
}


def is_coca_checkpoint(folder: str) -> bool:
    """An open_clip local-dir folder (weights and config) whose model config has a multimodal (decoder) part."""
    config = Path(folder) / ckpt.CONFIG
    if not (config.is_file() and (Path(folder) / ckpt.WEIGHTS).is_file()):
        return False
    try:
        return "multimodal_cfg" in json.loads(config.read_text()).get("model_cfg", {})
    except (json.JSONDecodeError, AttributeError):
        return False


@dataclass
class CocaCaptioner:
    """An open_clip CoCa model in eval mode, its preprocessing and its tokenizer."""

    model: torch.nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    tokenizer: object  # open_clip's: CLIP's BPE, or a transformers tokenizer the model config names
    device: torch.device

    @torch.no_grad()
    def generate(self, images: torch.Tensor, options: GenerateConfig) -> list[str]:
        # sot + up to max_length tokens, and never past the text tower's positions
        seq_len = min(options.max_length + 1, self.model.context_length)
        ids = special_ids(self.tokenizer)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(options.seed)  # open_clip samples with torch.multinomial on the global generator
            tokens = self.model.generate(images.to(self.device), seq_len=seq_len, max_seq_len=seq_len,
                                         min_seq_len=MIN_TOKENS, sot_token_id=ids.sot, eos_token_id=ids.eot,
                                         pad_token_id=ids.pad, **DECODING[options.method](options))
        return [self._text(row, ids) for row in tokens.tolist()]

    def _text(self, row: list[int], ids: SpecialIds) -> str:
        """The caption of one generated row: after the start token, up to the end token (padding dropped)."""
        if row and row[0] == ids.sot:
            row = row[1:]
        if ids.eot in row:
            row = row[:row.index(ids.eot)]
        return decode(self.tokenizer, row)


def load_coca(folder: str, device: torch.device) -> CocaCaptioner:
    """The CoCa checkpoint in the local `folder` through open_clip, on `device`, in eval mode."""
    built = build_model(f"local-dir:{folder}", augment=False, weights=folder)
    return CocaCaptioner(built.model.to(device).eval(), built.preprocess_val, built.tokenizer, device)


register("coca", CaptionerFormat(matches=is_coca_checkpoint, load=load_coca))
