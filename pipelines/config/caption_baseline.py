"""The nearest-neighbour baseline captioner's caption bank (`clipline caption-baseline`)."""

from __future__ import annotations

from pydantic import Field

from clipline.pipelines.config.base import Config


class CaptionBankConfig(Config):
    """Build the nearest-neighbour baseline: training images embedded with a CLIP checkpoint, their captions kept."""

    clip: str = Field(description="The CLIP checkpoint (a clipline checkpoint, a run folder or local-dir: folder).")
    data: str = Field(description="Training shards (a folder of .tar, a .tar or a brace pattern) with key.txt "
                      "captions; each image's first caption is kept.")
    out: str = Field(description="The folder written: a captioner checkpoint of kind `nearest`.")
    batch_size: int = Field(default=64, ge=1, description="Images embedded per forward pass.")
    gpu: bool = Field(default=False, description="Embed on the CUDA device.")
