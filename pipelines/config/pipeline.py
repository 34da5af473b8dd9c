"""Configs of the report and of the whole pipeline."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, create_model, field_validator

from clipline.pipelines import storage
from clipline.pipelines.config.base import Config, StoreConfig, _valid_uri, home_uri
from clipline.pipelines.config.caption import GenerateConfig
from clipline.pipelines.config.curate import CurateConfig

# The pipeline's curate stage takes CurateConfig's options as they are declared there; the pipeline supplies
# where the data comes from and goes to, and the store.
PIPELINE_SUPPLIED = ("data", "output_uri", "scores_uri", "samples_per_shard", "store")
CurateStage = create_model(
    "CurateStage", __base__=Config,
    __doc__="The pipeline's optional curate stage: CurateConfig's filters, run on the ingested training images "
            "before training (which then reads the curated shards).",
    decontaminate_held_out=(bool, Field(default=True, description="Also remove training images within "
                                        "contamination_max_bits pHash bits of a held-out image.")),
    **{name: (field.annotation, field) for name, field in CurateConfig.model_fields.items()
       if name not in PIPELINE_SUPPLIED})


class CaptionStage(Config):
    """The pipeline's optional captioning: a CoCa trained on the training images beside the CLIP, then captions
    of the held-out images (rows in `predictions`, task `captioning`)."""

    model: str = Field(default="clipline-tiny-coca", description="CoCa model to train.")
    steps: int = Field(default=300, ge=1, description="CoCa training steps (batch size, lr and warm-up are the "
                       "pipeline's).")
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    limit: int | None = Field(default=1000, ge=1, description="Held-out images captioned at most.")


class ReportConfig(Config):
    """Render the results store as one static, self-contained HTML page (charts inline, no network)."""

    output_uri: str = Field(default="report.html", validate_default=True, description="Where the HTML page goes "
                            "(path or s3://).", json_schema_extra={"flag": "--out"})
    max_runs: int = Field(default=10, ge=1, description="Training runs drawn in the curves, newest first.")
    max_confusions: int = Field(default=6, ge=1, description="Confusion matrices drawn (latest classification "
                                "evaluations first).")
    max_examples: int = Field(default=6, ge=1, description="Retrieval examples shown with thumbnails, per "
                              "evaluated (checkpoint, dataset); at most 8 (sql/queries/retrieval_examples.sql).")
    store: StoreConfig = Field(default_factory=StoreConfig)

    @field_validator("output_uri")
    @classmethod
    def _check_out(cls, value: str) -> str:
        return storage.absolute(_valid_uri(value))


def default_pipeline_workdir() -> str:
    return storage.absolute(storage.join(home_uri(), "pipeline"))


class PipelineConfig(Config):
    """The whole pipeline as one DAG: ingest (training images, held-out images, videos) -> train a CLIP (and a
    video head) -> evaluate zero-shot and retrieval on the held-out images -> distances between the datasets ->
    the HTML report. Datasets, runs and the report go under `workdir`; results to the store."""

    image_url_list: str = Field(description="Image-text URL list to train on (any format `clipline ingest` reads).")
    eval_url_list: str = Field(description="Held-out image URL list with a label column: zero-shot classification "
                               "and retrieval are measured on it.")
    video_url_list: str | None = Field(default=None, description="Video-text URL list: ingested, given a temporal "
                                       "head on the trained CLIP, and compared with the image datasets.")
    classnames: list[str] = Field(min_length=2, description="Class names in label order (the eval list's label "
                                  "column holds indices into it).")
    label_col: str = Field(default="label", description="Column of the eval list holding the class index.")
    workdir: str = Field(default_factory=default_pipeline_workdir, description="Folder (or s3:// prefix) for the "
                         "datasets, runs and report of the pipeline.")
    allowed_networks: list[str] = Field(default=[], description="CIDR ranges the crawler may reach despite the "
                                        "private-address guard (e.g. 127.0.0.0/8 for a local mirror).")
    image_size: int = Field(default=64, ge=8, description="Stored image size (pixels).")
    samples_per_shard: int = Field(default=1000, ge=1, description="Input rows per shard.")
    ingest_workers: int = Field(default=2, ge=1, description="Shards crawled at once per ingest.")
    model: str = Field(default="clipline-tiny", description="Model to train (open_clip name or clipline config).")
    steps: int = Field(default=300, ge=1, description="CLIP training steps.")
    batch_size: int = Field(default=128, ge=2, description="CLIP training batch per worker.")
    lr: float = Field(default=1e-3, gt=0, description="Peak learning rate.")
    warmup: int = Field(default=20, ge=0, description="Warm-up steps.")
    train_workers: int = Field(default=0, ge=0, description="Ray Train workers (0: in the flow's process).")
    eval_workers: int = Field(default=0, ge=0, description="(checkpoint, dataset) pairs evaluated at once as Ray "
                              "tasks (0: in the stage's process; on a cluster, tasks spread over the nodes).")
    distance_workers: int = Field(default=0, ge=0, description="Datasets embedded at once as Ray tasks for the "
                                  "distances (0: in the stage's process; on a cluster, 2-3 spread them over nodes).")
    video_steps: int = Field(default=30, ge=1, description="Video head training steps (on the trained CLIP).")
    video_head: Literal["mean", "lstm", "transformer"] = Field(default="transformer", description="Temporal head.")
    num_frames: int = Field(default=4, ge=1, description="Frames per clip (ingest and video training).")
    distance_samples: int = Field(default=500, ge=2, description="Items drawn per dataset for the distances.")
    text_model: str | None = Field(default=None, description="fastText .bin/.vec for caption vectors (none: train "
                                   "one on the captions).")
    seed: int = Field(default=0, description="Seed for training, sampling and distances.")
    curate: CurateStage | None = Field(default=None, description="Curate the training images before training "
                                       "(filters, dedup, decontamination: CurateConfig's options); off when absent.")
    caption: CaptionStage | None = Field(default=None, description="Train a CoCa and caption the held-out images "
                                         "after training; off when absent.")
    store: StoreConfig = Field(default_factory=StoreConfig)

    @field_validator("workdir")
    @classmethod
    def _check_workdir(cls, value: str) -> str:
        return storage.absolute(value)

    @field_validator("image_url_list", "eval_url_list", "video_url_list", "text_model")
    @classmethod
    def _check_inputs(cls, value: str | None) -> str | None:
        return value if value is None else storage.absolute(value)
