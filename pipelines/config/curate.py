"""Config of curation: per-sample scores, the filters (an intersection), deduplication and decontamination."""

from __future__ import annotations

import posixpath
from typing import Literal

from pydantic import Field, field_validator, model_validator

from clipline.pipelines import storage
from clipline.pipelines.config.base import Config, StoreConfig, home_uri

DEDUP_METHODS = ("exact", "phash", "embedding")
# The threshold each dedup method takes when none is given. pHash: at most 10 of 64 bits differ. On scikit-image's
# photos, halved and JPEG q=50 copies move 0-7 bits, 5% crops 0-22 (most under 10), and the closest two distinct
# photos are 20 apart. Embedding: cosine of at least 0.95 (SemDeDup's range is 0.9-0.99 for CLIP ViT-B/32; set
# it for your scorer).
DEFAULT_DEDUP_THRESHOLD = {"exact": 0.0, "phash": 10.0, "embedding": 0.95}


def _split_name(item: str) -> tuple[str, str]:
    """NAME=SHARDS, or SHARDS named after its folder."""
    name, sep, spec = item.partition("=")
    if sep and name.strip() and "/" not in name:
        return name.strip(), spec.strip()
    folder = posixpath.basename(item.split("::")[0].rstrip("/"))
    return (folder if folder and "{" not in folder and not folder.endswith(".tar") else "eval"), item.strip()


def default_scores_uri() -> str:
    return storage.absolute(storage.join(home_uri(), "curate", "scores"))


class CurateConfig(Config):
    """Score every sample of WebDataset shards once (CLIP score, caption length, sizes, pHash, embedding cluster,
    nearest eval image), keep the intersection of the filters, and write the kept samples as new shards."""

    data: str = Field(description="Shards to curate: a folder of .tar, a .tar, or brace patterns joined by '::' "
                      "(local, s3://).")
    output_uri: str = Field(description="Folder for the curated shards, sizes.json and kept_keys.parquet.",
                            json_schema_extra={"flag": "--out"})
    scorer: str | None = Field(default=None, description="CLIP checkpoint for CLIP scores and embeddings: a clipline "
                               "checkpoint or run folder, local-dir:DIR, or an open_clip model name with --pretrained. "
                               "Needed by the CLIP-score filters, embedding dedup and cosine decontamination.")
    pretrained: str | None = Field(default=None, description="Weights file for a --scorer given as an open_clip "
                                   "model name.")
    min_clip_score: float | None = Field(default=None, ge=-1, le=1, description="Keep samples whose image-caption "
                                         "cosine is at least this (off by default).")
    clip_score_top_fraction: float | None = Field(default=None, gt=0, le=1, description="Keep this fraction of "
                                                  "samples with the highest CLIP score (DataComp keeps 0.3; off by "
                                                  "default).")
    min_caption_words: int | None = Field(default=None, ge=1, description="Keep captions of at least this many "
                                          "words (off by default).")
    min_image_size: int | None = Field(default=None, ge=1, description="Keep images whose original shorter side is "
                                       "at least this many pixels (off by default).")
    max_aspect_ratio: float | None = Field(default=None, ge=1, description="Keep images whose original longer side "
                                           "is at most this many times the shorter one (off by default).")
    dedup: Literal["exact", "phash", "embedding"] | None = Field(
        default=None, description="Keep one sample per group of duplicates, across all shards: exact (same image "
        "bytes), phash (64-bit perceptual hash within --dedup-threshold bits, bucketed by LSH bands) or embedding "
        "(SemDeDup: k-means, then cosine >= --dedup-threshold within each cluster). Off by default.")
    dedup_threshold: float | None = Field(default=None, ge=0, description="phash: most differing bits (default 10); "
                                          "embedding: least cosine (default 0.95).")
    num_clusters: int | None = Field(default=None, ge=1, description="k-means clusters of the image embeddings "
                                     "(default: about sqrt(samples)).")
    decontaminate: list[str] = Field(default=[], description="Eval datasets (NAME=SHARDS or SHARDS, as --data) "
                                     "whose images must not be trained on: samples within --contamination-max-bits "
                                     "pHash bits (or --contamination-min-cosine) of any of their images are removed.")
    contamination_max_bits: int = Field(default=4, ge=0, le=64, description="pHash bits within which a sample "
                                        "counts as a copy of an eval image.")
    contamination_min_cosine: float | None = Field(default=None, gt=-1, le=1, description="Also flag samples whose "
                                                   "image embedding has at least this cosine with an eval image "
                                                   "(needs --scorer; off by default).")
    allow_empty: bool = Field(default=False, description="Accept a filter that keeps nothing (else an error names "
                              "it).")
    samples_per_shard: int = Field(default=10_000, ge=1, description="Samples per curated shard.")
    scores_uri: str = Field(default_factory=default_scores_uri, description="Where per-sample scores are kept, one "
                            "folder per (dataset, scorer, scores version), and reused by later runs.")
    batch_size: int = Field(default=64, ge=1, description="Images embedded per forward pass.")
    workers: int = Field(default=0, ge=0, description="Shards scored at once as Ray tasks, the CPUs split between "
                         "them; 0 scores them one after another in this process.")
    gpu: bool = Field(default=False, description="Score on the CUDA device (one GPU per Ray task).")
    seed: int = Field(default=0, description="Seed of k-means.")
    store: StoreConfig = Field(default_factory=StoreConfig)

    @field_validator("data")
    @classmethod
    def _check_data(cls, value: str) -> str:
        return storage.absolute_sources(value)

    @field_validator("decontaminate")
    @classmethod
    def _check_eval(cls, value: list[str]) -> list[str]:
        named = [_split_name(item) for item in value]
        names = [name for name, _ in named]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"eval dataset name {repeated[0]!r} is given twice; write NAME=SHARDS to tell them apart")
        return [f"{name}={storage.absolute_sources(spec)}" for name, spec in named]

    @field_validator("output_uri", "scores_uri")
    @classmethod
    def _check_out(cls, value: str) -> str:
        return storage.absolute(value)

    @model_validator(mode="after")
    def _check_filters(self) -> CurateConfig:
        if self.min_clip_score is not None and self.clip_score_top_fraction is not None:
            raise ValueError("give --min-clip-score or --clip-score-top-fraction, not both")
        needs = {"--min-clip-score": self.min_clip_score is not None,
                 "--clip-score-top-fraction": self.clip_score_top_fraction is not None,
                 "--dedup embedding": self.dedup == "embedding",
                 "--contamination-min-cosine": self.contamination_min_cosine is not None}
        missing = [flag for flag, wanted in needs.items() if wanted]
        if missing and not self.scorer:
            raise ValueError(f"{', '.join(missing)} needs --scorer CKPT (a CLIP checkpoint to embed with)")
        if self.dedup == "embedding" and self.dedup_threshold is not None and self.dedup_threshold > 1:
            raise ValueError(f"--dedup-threshold {self.dedup_threshold} is not a cosine (embedding dedup takes 0-1)")
        return self

    def eval_datasets(self) -> dict[str, str]:
        """Eval dataset name -> shard spec, in the order given."""
        return dict(item.split("=", 1) for item in self.decontaminate)

    def threshold(self) -> float:
        """The dedup threshold in force: the given one, else the method's default."""
        if self.dedup is None:
            raise ValueError("no dedup method set")
        return DEFAULT_DEDUP_THRESHOLD[self.dedup] if self.dedup_threshold is None else self.dedup_threshold
