"""How captions are generated (`clipline caption`, captioning evaluation)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from clipline.pipelines.config.base import Config

DECODE_METHODS = ("greedy", "beam", "nucleus")


class GenerateConfig(Config):
    """Decoding options shared by every captioner kind (CoCa, ClipCap)."""

    method: Literal["greedy", "beam", "nucleus"] = Field(
        default="beam", description="Decoding: greedy, beam (beam search) or nucleus (top-p sampling, seeded).")
    num_beams: int = Field(default=3, ge=1, description="Beams for --method beam.")
    top_p: float = Field(default=0.9, gt=0, le=1, description="Probability mass kept by --method nucleus.")
    temperature: float = Field(default=1.0, gt=0, description="Softmax temperature for --method nucleus.")
    seed: int = Field(default=0, description="Seed of --method nucleus: the same seed gives the same captions.")
    max_length: int = Field(default=30, ge=2, le=200, description="Most tokens generated per caption.")
