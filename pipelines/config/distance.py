"""Configs of dataset distances: transport, caption vectors, comparisons."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from clipline.pipelines import storage
from clipline.pipelines.config.base import Config, StoreConfig, _valid_uri, default_cache_dir


class TransportConfig(Config):
    """How one Wasserstein-1 distance between two point sets is computed (pipelines/distance/wasserstein.py)."""

    method: Literal["auto", "exact", "sliced", "sinkhorn"] = Field(
        default="auto", description="exact: network simplex on the full cost matrix (n x n float64); sliced: mean "
        "1-D W1 over random directions (a lower bound of exact); sinkhorn: entropic OT (an upper bound); auto: "
        "exact up to max_exact_samples points per side, sliced above.")
    max_exact_samples: int = Field(default=2500, ge=1, description="auto: largest side solved exactly (2,500 "
                                   "points a side in 512 dims: about 2 s of CPU and 200 MB; the time grows about "
                                   "n^2.5, 5,000 took 11 s and 1 GB; docs/benchmarks.md).")
    projections: int = Field(default=1024, ge=1, description="sliced: random unit directions averaged.")
    sinkhorn_reg: float = Field(default=0.05, gt=0, description="sinkhorn: entropic regularisation as a fraction "
                                "of the median pairwise cost (scale-free); smaller is closer to exact but slower.")


class FastTextConfig(Config):
    """Caption embeddings from fastText word vectors (pipelines/distance/text.py)."""

    model_uri: str | None = Field(default=None, description="A fastText .bin model or a .vec/.vec.gz text file "
                                  "(e.g. wiki-news-300d-1M-subword.vec); a caption's vector is the mean of its "
                                  "words' vectors. None: train a small model on the captions being compared (and "
                                  "record that).", json_schema_extra={"flag": "--text-model"})
    cache_dir: str = Field(default_factory=default_cache_dir, description="Local folder for the memory-mapped "
                           "copy of a .vec file (parsed once, keyed by its sha256) and for remote .bin files.")
    dim: int = Field(default=64, ge=2, description="Trained model: vector size.")
    epoch: int = Field(default=10, ge=1, description="Trained model: passes over the captions.")
    bucket: int = Field(default=20_000, ge=1, description="Trained model: subword hash buckets; fastText's 2M "
                        "default makes a .bin of hundreds of MB for a few thousand captions.")
    threads: int = Field(default=2, ge=1, description="Trained model: training threads (at least 11 are started: "
                         "fastText initialises its weights in one tenth per thread; see distance/text.py).")

    @field_validator("model_uri")
    @classmethod
    def _check_uri(cls, value: str | None) -> str | None:
        return value if value is None else _valid_uri(value)

    @field_validator("cache_dir")
    @classmethod
    def _check_local(cls, value: str) -> str:
        if not storage.is_local(value):
            raise ValueError(f"cache_dir must be a local folder (files there are memory-mapped), got {value!r}")
        return value


class DistanceConfig(Config):
    """Wasserstein-1 distances between datasets in one embedding space, with self baselines and intervals."""

    num_samples: int | None = Field(default=None, ge=1, description="Points drawn from each dataset for every "
                                    "distance (the same n for all pairs: W1 between samples shrinks as n grows). "
                                    "Each dataset needs 2n points, for its split-half self baseline. None: the "
                                    "largest n every dataset allows.")
    num_resamples: int = Field(default=0, ge=0, description="Fresh subsamples per distance for a percentile "
                               "interval (ci_low, ci_high); 0: no interval.", json_schema_extra={"flag": "--bootstrap"})
    ci_level: float = Field(default=0.95, gt=0, lt=1, description="Interval coverage.")
    seed: int = Field(default=0, description="Seed for subsamples and sliced directions.")
    transport: TransportConfig = Field(default_factory=TransportConfig)
    fasttext: FastTextConfig = Field(default_factory=FastTextConfig)


EMBEDDING_SPACES = ("clip_image", "fasttext_text")


class DatasetDistanceConfig(Config):
    """Embed a seeded sample of each dataset (CLIP image features of sampled frames, fastText caption vectors)
    and compute Wasserstein-1 distances between every pair, with split-half self baselines."""

    datasets: list[str] = Field(min_length=2, description="Datasets as NAME=SHARDS: clipline image or video shards "
                                "(a folder of .tar, a .tar, or a brace pattern; local or s3://).")
    samples: int = Field(default=1000, ge=2, description="Items (images or videos) drawn per dataset with --seed; a "
                         "dataset with fewer is used whole. Distances compare n = half of the smallest sample per "
                         "dataset (the other half is its self baseline) unless --num-samples says otherwise.")
    frames_per_video: int = Field(default=1, ge=1, description="Video samples: random frames of each video "
                                  "embedded (each one a point of the image space).")
    spaces: list[Literal["clip_image", "fasttext_text"]] = Field(
        default=list(EMBEDDING_SPACES), min_length=1, description="Embedding spaces compared: clip_image (needs "
        "--image-encoder) and fasttext_text.", json_schema_extra={"flag": "--space"})
    image_encoder: str | None = Field(default=None, description="The CLIP image tower: a clipline checkpoint "
                                      "(RUN/checkpoints/step-N), a run folder (its latest checkpoint), a local-dir: "
                                      "folder, or an open_clip model name with --pretrained.")
    pretrained: str | None = Field(default=None, description="Weights for an --image-encoder given as an open_clip "
                                   "model name (a file path).")
    batch_size: int = Field(default=64, ge=1, description="Images embedded per forward pass.")
    workers: int = Field(default=0, ge=0, description="Datasets embedded at once as Ray tasks, the CPUs split "
                         "between them; 0 embeds them one after another in this process.")
    gpu: bool = Field(default=False, description="Embed on the CUDA device.")
    top_words: int = Field(default=20, ge=0, description="Most frequent caption words stored per dataset (English "
                           "stop words left out).")
    output_uri: str | None = Field(default=None, description="Folder for the heatmap PNGs (default: "
                                   "distances/RUN_ID beside the results store).", json_schema_extra={"flag": "--out"})
    distance: DistanceConfig = Field(default_factory=DistanceConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)

    @field_validator("datasets")
    @classmethod
    def _named(cls, value: list[str]) -> list[str]:
        names = []
        for item in value:
            name, sep, spec = item.partition("=")
            if not sep or not name.strip() or not spec.strip():
                raise ValueError(f"dataset {item!r} is not NAME=SHARDS (e.g. laion=data/laion/{{00000..00009}}.tar)")
            storage.split_protocol(spec.split("::")[0].strip())
            names.append(name.strip())
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"dataset name {repeated[0]!r} is given twice; names must be unique")
        # Ray workers may not share this working directory: local paths are made absolute.
        return [f"{name}={storage.absolute_sources(item.partition('=')[2].strip())}"
                for name, item in zip(names, value, strict=True)]

    @field_validator("output_uri")
    @classmethod
    def _check_out(cls, value: str | None) -> str | None:
        return value if value is None else storage.absolute(value)

    @model_validator(mode="after")
    def _check_spaces(self) -> DatasetDistanceConfig:
        if "clip_image" in self.spaces and not self.image_encoder:
            raise ValueError("the clip_image space needs --image-encoder CKPT (or compare captions only with "
                             "--space fasttext_text)")
        return self

    def named_datasets(self) -> dict[str, str]:
        """Dataset name -> shard spec, in the order given."""
        return dict(item.split("=", 1) for item in self.datasets)
