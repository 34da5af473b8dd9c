"""How captions are generated (`clipline caption`, captioning evaluation)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from clipline.pipelines import storage
from clipline.pipelines.config.base import Config, StoreConfig, _valid_uri

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


class CaptionConfig(Config):
    """Caption the images of WebDataset shards with a captioner checkpoint (CoCa or ClipCap); one `predictions`
    row per sample (task `captioning`) in the results store."""

    checkpoint: str = Field(description="A captioner checkpoint: `clipline train --kind coca` or `clipline "
                            "train-captioner` (RUN/checkpoints/step-N, local or s3://).")
    data: str = Field(description="Shards to caption: brace patterns joined by '::', or a folder of .tar (local, "
                      "s3://).")
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    limit: int | None = Field(default=None, ge=1, description="Caption at most this many samples (in shard order).")
    batch_size: int = Field(default=32, ge=1, description="Images captioned at once.")
    gpu: bool = Field(default=False, description="Generate on the first CUDA device.")
    store: StoreConfig = Field(default_factory=StoreConfig)

    @field_validator("checkpoint")
    @classmethod
    def _check_checkpoint(cls, value: str) -> str:
        return storage.absolute(_valid_uri(value))

    @field_validator("data")
    @classmethod
    def _check_data(cls, value: str) -> str:
        return storage.absolute_sources(value)
