"""The one interface every captioner kind implements, and the registry that loads a checkpoint as one.

A kind registers a `CaptionerFormat`: how to recognise its checkpoint folder
and how to load it. `load_captioner(uri)` picks the first format that
recognises the folder, so `clipline caption` and captioning evaluation never
ask which kind a checkpoint is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from PIL import Image

from clipline.pipelines.config.caption import GenerateConfig
from clipline.pipelines.errors import ClipLineError


class Captioner(Protocol):
    """A loaded captioner in eval mode on `device`."""

    device: torch.device
    preprocess: Callable[[Image.Image], torch.Tensor]  # a PIL image -> the model's input tensor (C, H, W)

    def generate(self, images: torch.Tensor, options: GenerateConfig) -> list[str]:
        """One caption per image of the batch `images` (N, C, H, W), cleaned of special tokens."""
        ...


@dataclass(frozen=True)
class CaptionerFormat:
    """A kind's checkpoint format: `matches(folder)` on a local copy of the checkpoint, and `load(uri, device)`."""

    matches: Callable[[str], bool]
    load: Callable[[str, torch.device], Captioner]


CAPTIONER_FORMATS: dict[str, CaptionerFormat] = {}  # kind name -> format; kinds add themselves on import


def register(kind: str, fmt: CaptionerFormat) -> None:
    CAPTIONER_FORMATS[kind] = fmt


def captioner_kind(folder: str) -> str:
    """The kind whose format recognises the checkpoint `folder` (a local folder)."""
    for kind, fmt in CAPTIONER_FORMATS.items():
        if fmt.matches(folder):
            return kind
    raise ClipLineError(f"{folder} is not a captioner checkpoint (known kinds: {', '.join(CAPTIONER_FORMATS)})",
                        "pass a checkpoint of `clipline train --kind coca` or `clipline train-captioner`")
