"""ClipCap checkpoints as captioners: `load_clipcap(uri)` and greedy / beam / nucleus decoding over the prefix.

Decoding is transformers' `generate(inputs_embeds=prefix)` on the GPT-2: it
returns only the new tokens, which stop at the LM's end-of-text. Nucleus
sampling draws from torch's global RNG inside a forked RNG state seeded with
the options' seed, so the same seed gives the same captions and the caller's
RNG is untouched.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from clipline.pipelines import storage
from clipline.pipelines.caption.captioner import CaptionerFormat, register
from clipline.pipelines.config.caption import GenerateConfig
from clipline.pipelines.models.caption_lm import CaptionTokenizer, OpenClipTokens, PretrainedTokens
from clipline.pipelines.models.clipcap import (
                                               CONFIG_FILE,
                                               LM_WEIGHTS,
                                               MAPPING_WEIGHTS,
                                               TOKENIZER_FOLDER,
                                               ClipCap,
                                               ClipCapConfig,
)
from clipline.pipelines.models.registry import build_model
from clipline.pipelines.train import checkpoint as ckpt

DECODING: dict[str, Callable[[GenerateConfig], dict]] = {  # method -> transformers' generate options
    "greedy": lambda o: {"do_sample": False, "num_beams": 1},
    "beam": lambda o: {"do_sample": False, "num_beams": o.num_beams, "early_stopping": True},
    "nucleus": lambda o: {"do_sample": True, "top_p": o.top_p, "top_k": 0, "temperature": o.temperature},
}


@dataclass
class ClipCapCaptioner:
    """A trained ClipCap in eval mode on `device` (implements pipelines.caption.captioner.Captioner)."""

    model: ClipCap
    tokenizer: CaptionTokenizer
    preprocess: Callable[[Image.Image], torch.Tensor]
    device: torch.device

    @torch.no_grad()
    def generate(self, images: torch.Tensor, options: GenerateConfig) -> list[str]:
        prefix = self.model.prefix(images.to(self.device))
        eos = self.tokenizer.eos_id
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(options.seed)
            mask = torch.ones(prefix.shape[:2], dtype=torch.long, device=self.device)  # no padding in a prefix
            out = self.model.lm.generate(inputs_embeds=prefix, attention_mask=mask, max_new_tokens=options.max_length,
                                         eos_token_id=eos, pad_token_id=eos, **DECODING[options.method](options))
        return [self.tokenizer.decode(_until(row.tolist(), eos)) for row in out]


def _until(ids: list[int], eos: int) -> list[int]:
    return ids[: ids.index(eos)] if eos in ids else ids


def is_clipcap(folder: str) -> bool:
    return (Path(folder) / CONFIG_FILE).is_file()


def load_clipcap(uri: str, device: torch.device | str = "cpu") -> ClipCapCaptioner:
    """The ClipCap of a checkpoint (local or s3://), in eval mode on `device`."""
    loaded = ckpt.load_checkpoint(uri, files=[MAPPING_WEIGHTS, LM_WEIGHTS])
    saved = ClipCapConfig.from_json(storage.read_text(storage.join(uri, CONFIG_FILE)))
    folder = ckpt.local_copy(uri)
    try:
        clip = build_model(f"local-dir:{folder}", augment=False, weights=folder)
    finally:
        ckpt.remove_local_copy(uri, folder)
    model = saved.build(clip.model)
    model.mapping.load_state_dict(loaded.files[MAPPING_WEIGHTS])
    model.lm.load_state_dict(loaded.files[LM_WEIGHTS])
    device = torch.device(device)
    return ClipCapCaptioner(model.to(device).eval(), _tokenizer(uri, saved), clip.preprocess_val, device)


def _tokenizer(uri: str, saved: ClipCapConfig) -> CaptionTokenizer:
    if saved.tokenizer == "open_clip":
        return OpenClipTokens()
    with tempfile.TemporaryDirectory() as folder:
        for found in storage.glob(storage.join(uri, TOKENIZER_FOLDER, "*")):
            (Path(folder) / found.rsplit("/", 1)[1]).write_bytes(storage.read_bytes(found))
        return PretrainedTokens(folder)


register("clipcap", CaptionerFormat(matches=is_clipcap, load=load_clipcap))
