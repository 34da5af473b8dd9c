"""The evaluation config."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from clipline.pipelines.config.base import Config, StoreConfig, _valid_uri
from clipline.pipelines.config.caption import GenerateConfig
from clipline.pipelines.config.ingest import FetchConfig

PROMPT_STRATEGIES = ("single", "ensemble", "vote")


class EvalConfig(Config):
    """Evaluate checkpoints on datasets: zero-shot classification, retrieval and linear probes (clip_benchmark's
    metrics), every (checkpoint, dataset) pair from one image feature pass; captioning for captioner checkpoints."""

    checkpoints: list[str] = Field(
        min_length=1, description="Checkpoints: a clipline checkpoint folder (RUN/checkpoints/step-N), a run folder "
        "(its latest checkpoint), a local-dir: folder, or an open_clip model name with --pretrained.",
        json_schema_extra={"flag": "--checkpoint"})
    pretrained: str | None = Field(default=None, description="Weights (a file path or open_clip pretrained tag) for "
                                   "checkpoints given as open_clip model names.")
    datasets: list[str] = Field(
        min_length=1, description="Datasets: clipline shards (a folder of .tar, a .tar or a brace pattern), "
        "clip_benchmark's WebDataset layout (ROOT with ROOT/test/nshards.txt), a folder with one subfolder per "
        "class, or a CSV of path_or_url,label. Prefix KIND: (shards, clip-benchmark, folder, csv) to force a reader.",
        json_schema_extra={"flag": "--data"})
    tasks: list[Literal["zeroshot", "retrieval", "linear-probe", "captioning"]] = Field(
        default=["zeroshot"], min_length=1, description="Tasks: zeroshot, retrieval, linear-probe (several share "
        "one image feature pass); captioning (a captioner checkpoint writes a caption per image, scored with "
        "clip_benchmark's BLEU-1..4, ROUGE-L, CIDEr, and METEOR when Java is present).",
        json_schema_extra={"flag": "--task"})
    classnames_uri: str | None = Field(default=None, description="Class names, one per line, in label order "
                                       "(default: the dataset's own, or its folder names).",
                                       json_schema_extra={"flag": "--classnames"})
    templates_uri: str | None = Field(default=None, description="Prompt templates, one per line, each with {c} for "
                                      "the class name (default: the dataset's own, else CLIP's 7 ImageNet "
                                      "templates).", json_schema_extra={"flag": "--templates"})
    strategy: Literal["single", "ensemble", "vote", "all"] = Field(
        default="ensemble", description="Zero-shot prompts: single (the first template), ensemble (mean of the "
        "normalized template embeddings, as CLIP and clip_benchmark), vote (each template predicts, majority wins, "
        "ties to the higher summed score), all (the three, from one feature pass).")
    split: str = Field(default="test", description="clip_benchmark layout: the split evaluated (ROOT/SPLIT/).")
    probe_split: str = Field(default="train", description="Linear probe: the dataset's own training split "
                             "(ROOT/SPLIT/, clip_benchmark layout) when present; else a seeded stratified split.")
    probe_test_fraction: float = Field(default=0.3, gt=0, lt=1, description="Linear probe without a training "
                                       "split: fraction of each class held out for testing.")
    probe_c: float = Field(default=10.0, gt=0, description="Linear probe: inverse L2 strength of the logistic "
                           "regression (sklearn's C) on the normalized image features.")
    probe_max_iter: int = Field(default=1000, ge=1, description="Linear probe: L-BFGS iterations.")
    recall_k: list[int] = Field(default=[1, 5, 10], min_length=1, description="Retrieval: the k of recall@k "
                                "(k is capped at the number of candidates).")
    batch_size: int = Field(default=64, ge=1, description="Images (and prompts) embedded per forward pass.")
    workers: int = Field(default=0, ge=0, description="(checkpoint, dataset) pairs evaluated at once as Ray tasks, "
                         "the CPUs split between them; 0 evaluates them one after another in this process.")
    gpu: bool = Field(default=False, description="Embed on the CUDA device.")
    seed: int = Field(default=0, description="Seed of the linear probe's split and solver (and of captions "
                      "decoded with --method nucleus).")
    plots_uri: str | None = Field(default=None, description="Where confusion-matrix PNGs go (default: a plots "
                                  "folder beside the results store).", json_schema_extra={"flag": "--plots-dir"})
    fetch: FetchConfig = Field(default_factory=FetchConfig, description="How images behind http(s) URLs in a CSV "
                               "are downloaded: the crawler's fetcher, its size cap and private-address guard.")
    generate: GenerateConfig = Field(default_factory=GenerateConfig, description="Captioning: how captions are "
                                     "decoded (the strategy column of the stored results is the method).")
    store: StoreConfig = Field(default_factory=StoreConfig)

    @field_validator("classnames_uri", "templates_uri", "plots_uri")
    @classmethod
    def _check_optional_uri(cls, value: str | None) -> str | None:
        return value if value is None else _valid_uri(value)

    @field_validator("recall_k")
    @classmethod
    def _check_recall_k(cls, value: list[int]) -> list[int]:
        if any(k < 1 for k in value):
            raise ValueError(f"recall_k must be positive, got {value}")
        return list(dict.fromkeys(value))

    @field_validator("tasks", "checkpoints", "datasets")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))  # a repeated name would evaluate (and store) the same thing twice

    def strategies(self) -> list[str]:
        """The prompt strategies to run: `all` expands to every one."""
        return list(PROMPT_STRATEGIES) if self.strategy == "all" else [self.strategy]
