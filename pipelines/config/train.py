"""Configs of CLIP and video-text training."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from clipline.pipelines import storage
from clipline.pipelines.config.base import Config, StoreConfig, _valid_uri


class TrainConfig(Config):
    """Train a CLIP-style model on WebDataset shards with Ray Train."""

    data: str = Field(description="Training shards: brace expansion and several sources joined with '::', local or "
                      "s3://, e.g. 'data/{00000..00009}.tar::s3://b/more/{00000..00003}.tar'.")
    output_uri: str = Field(description="Run location for checkpoints (path or s3://).",
                            json_schema_extra={"flag": "--out"})
    model: str = Field(default="clipline-tiny", description="An open_clip model name, a clipline config "
                       "(pipelines/models/configs), or a path to an open_clip JSON model config.")
    steps: int | None = Field(default=None, ge=1, description="Optimizer steps to train (or give --epochs).")
    epochs: int | None = Field(default=None, ge=1, description="Passes over the data (needs sizes.json beside the "
                               "shards or --samples-per-epoch).")
    samples_per_epoch: int | None = Field(default=None, ge=1, description="Samples in one epoch when the shards "
                                          "have no sizes.json.")
    batch_size: int = Field(default=256, ge=1, description="Samples per worker per step (global batch = batch size "
                            "x workers x accum freq).")
    lr: float = Field(default=5e-4, gt=0, description="Peak learning rate (AdamW).")
    warmup: int = Field(default=500, ge=0, description="Linear warm-up steps before the cosine decay.")
    weight_decay: float = Field(default=0.2, ge=0, description="AdamW weight decay (never on gains, biases and the "
                                "logit scale).")
    beta1: float = Field(default=0.9, description="AdamW beta1.")
    beta2: float = Field(default=0.98, description="AdamW beta2 (CLIP's value).")
    eps: float = Field(default=1e-6, description="AdamW epsilon (CLIP's value).")
    workers: int = Field(default=1, ge=0, description="Ray Train workers; 0 runs the loop in this process.")
    min_workers: int | None = Field(default=None, ge=1, description="Elastic training: go on with as few as this "
                                    "many workers when nodes are lost (and grow back to --workers when they return); "
                                    "gradient accumulation rises so the global batch stays the same.")
    resize_interval_s: float = Field(default=60.0, gt=0, description="Elastic training: how often a healthy run "
                                     "checks for returned nodes to grow back onto (Ray Train's "
                                     "elastic_resize_monitor_interval_s; a resize restarts from the last "
                                     "checkpoint).")
    gpu: bool = Field(default=False, description="One CUDA device per worker.")
    precision: Literal["fp32", "bf16", "amp"] = Field(default="fp32", description="fp32, or bf16/amp autocast "
                                                      "(GPU).")
    compile: bool = Field(default=False, description="torch.compile the model (GPU).")
    accum_freq: int = Field(default=1, ge=1, description="Gradient accumulation: steps of features gathered before "
                            "one optimizer step (open_clip's --accum-freq).")
    loss: Literal["clip", "siglip"] = Field(default="clip", description="open_clip's ClipLoss or SigLipLoss.")
    lock_image: bool = Field(default=False, description="Freeze the image tower (LiT); needs --init.")
    lock_image_unlocked_groups: int = Field(default=0, ge=0, description="With --lock-image: leave the last N "
                                            "layer groups of the image tower trainable (open_clip's).")
    lock_image_freeze_bn_stats: bool = Field(default=True, description="With --lock-image: freeze BatchNorm "
                                             "running statistics too (open_clip's).")
    patch_dropout: float = Field(default=0.0, ge=0, lt=1, description="Fraction of image patches dropped in "
                                 "training, none in evaluation (open_clip's patch dropout; FLIP).")
    grad_checkpointing: bool = Field(default=False, description="Recompute activations in the backward pass: "
                                     "less memory, same gradients, more compute.")
    distill_model: str | None = Field(default=None, description="A clipline checkpoint to distill from (open_clip's "
                                      "DistillClipLoss: the teacher's logits join the contrastive loss).")
    init: str | None = Field(default=None, description="Start from these weights: a clipline checkpoint or a "
                             "local-dir: folder.")
    resume: str | None = Field(default=None, description="'latest' to continue this run location's newest "
                               "checkpoint, 'auto' to continue it if there is one (else start), or a checkpoint "
                               "path.")
    checkpoint_every: int = Field(default=1000, ge=1, description="Checkpoint every N steps (and at the end).")
    log_every: int = Field(default=10, ge=1, description="Write training metrics every N steps.")
    val_data: str | None = Field(default=None, description="Validation shards: loss and in-batch recall@1 at each "
                                 "checkpoint.")
    val_batches: int = Field(default=4, ge=1, description="Validation batches evaluated per checkpoint.")
    resampled: bool = Field(default=False, description="Sample shards with replacement (each worker its own stream) "
                            "instead of splitting them between workers.")
    data_weights: list[float] | None = Field(default=None, description="One weight per '::' source of --data: each "
                                             "shard of source i is drawn with weight w_i (open_clip's "
                                             "--train-data-upsampling-factors); needs --resampled.")
    shuffle: int = Field(default=1000, ge=0, description="Sample shuffle buffer per data worker (0: read in order).")
    augment: bool = Field(default=True, description="open_clip's training augmentation (random resized crop).")
    data_workers: int = Field(default=1, ge=0, description="DataLoader processes per training worker.")
    max_failures: int = Field(default=2, ge=0, description="Worker failures recovered from the last checkpoint "
                              "before the run fails.")
    seed: int = Field(default=0, description="Seed for model init, shuffling and augmentation.")
    store: StoreConfig = Field(default_factory=StoreConfig)

    _check_uri = field_validator("output_uri")(_valid_uri)

    # Ray Train workers run in their own working directory: relative paths would resolve there.
    @field_validator("output_uri", "init", "distill_model")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        return value if value is None else storage.absolute(value)

    @field_validator("resume")
    @classmethod
    def _absolute_resume(cls, value: str | None) -> str | None:
        return value if value in (None, "latest", "auto") else storage.absolute(value)

    @field_validator("data", "val_data")
    @classmethod
    def _absolute_sources(cls, value: str | None) -> str | None:
        return value if value is None else storage.absolute_sources(value)

    @model_validator(mode="after")
    def _check_combinations(self) -> TrainConfig:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of steps and epochs")
        if self.lock_image and not self.init:
            raise ValueError("lock_image needs init: the image tower to freeze")
        if self.precision != "fp32" and not self.gpu:
            raise ValueError(f"precision {self.precision} needs gpu; use fp32 on CPU")
        if self.data_weights is not None:
            self._check_weights()
        if self.min_workers is not None and not 1 <= self.min_workers <= self.workers:
            raise ValueError(f"min_workers {self.min_workers} must be between 1 and workers ({self.workers})")
        if self.distill_model and self.loss != "clip":
            raise ValueError("distill_model works with loss clip (open_clip's DistillClipLoss)")
        return self

    def input_checkpoints(self) -> list[str]:
        """The checkpoints this run reads (each is checked before any work)."""
        return [uri for uri in (self.init, self.distill_model) if uri]

    def _check_weights(self) -> None:
        sources = [part for part in self.data.split("::") if part.strip()]
        if len(self.data_weights) != len(sources):
            raise ValueError(f"data_weights has {len(self.data_weights)} values for {len(sources)} '::' sources "
                             "of data; give one weight per source")
        if not self.resampled:
            raise ValueError("data_weights needs resampled: mixing draws shards with replacement")
        if any(w <= 0 for w in self.data_weights):
            raise ValueError("data_weights must be positive")


TemporalHead = Literal["mean", "lstm", "transformer"]  # the keys of pipelines.models.temporal.TEMPORAL_HEADS


class VideoTrainConfig(TrainConfig):
    """Train a video-text model on video shards: a CLIP image tower on each frame, learned temporal position
    embeddings and a temporal head over the frames, against the CLIP text tower (CLIP4Clip)."""

    head: TemporalHead = Field(
        default="transformer", description="Temporal head over the frame embeddings: mean (mean pooling, no "
        "parameters: blind to frame order), lstm (an LSTM, residual), transformer (a Transformer encoder, residual).")
    head_layers: int = Field(default=2, ge=1, description="Layers of the lstm or transformer head.")
    num_frames: int = Field(default=8, ge=1, le=64, description="Frames per clip fed to the model; a clip stored "
                            "with another count is sampled uniformly (frames repeat when it has fewer).")
    freeze_image_tower: bool = Field(default=False, description="Train only the temporal head, the projections and "
                                     "the temperature; the CLIP towers stay fixed.")
    image_lr_scale: float = Field(default=1e-3, gt=0, le=1, description="Learning rate of the CLIP towers as a "
                                  "fraction of --lr when they train (CLIP4Clip's coef_lr).")
    augment: bool = Field(default=False, description="Not available for video: one random crop per clip is not "
                          "implemented, and per-frame crops would jitter the clip. Must stay off.")
    val_data: str | None = Field(default=None, description="Validation video shards: loss, text->video and "
                                 "video->text recall@1/5/10 and median rank at each checkpoint.")

    @model_validator(mode="after")
    def _check_video(self) -> VideoTrainConfig:
        if self.lock_image:
            raise ValueError("lock_image is for image-text training; use freeze_image_tower")
        if self.augment:
            raise ValueError("augment is not available for video training; leave it off")
        if self.distill_model:
            raise ValueError("distill_model is for image-text training")
        return self


class CocaTrainConfig(TrainConfig):
    """Train a CoCa captioner (contrastive and captioning losses together, open_clip's CoCa and CoCaLoss) on
    image-text shards; its checkpoints caption with `clipline caption`."""

    model: str = Field(default="clipline-tiny-coca", description="An open_clip CoCa model (its config has a "
                       "multimodal_cfg): a clipline config, an open_clip name or a JSON path.")
    loss: Literal["coca"] = Field(default="coca", description="open_clip's CoCaLoss (the only loss of CoCa).")
    contrastive_weight: float = Field(default=1.0, ge=0, description="Weight of the contrastive (CLIP) loss term "
                                      "(open_clip's --coca-contrastive-loss-weight).")
    caption_weight: float = Field(default=2.0, gt=0, description="Weight of the captioning (next-token) loss term "
                                  "(open_clip's --coca-caption-loss-weight).")

    @model_validator(mode="after")
    def _check_coca(self) -> CocaTrainConfig:
        if self.lock_image:
            raise ValueError("lock_image is not available for coca training (open_clip's CoCa has no lock)")
        if self.distill_model:
            raise ValueError("distill_model is for image-text training")
        return self


TRAIN_KINDS = {"image-text": TrainConfig, "coca": CocaTrainConfig}  # `clipline train --kind` -> its config


# The train_clip flow's parameter: a config of either kind. A plain union (pydantic's smart mode: an instance keeps
# its exact type, a dict goes to the first kind it fits, and only a CoCa config fits CocaTrainConfig's fields or
# loss 'coca'); its JSON schema is an anyOf, which Prefect's server accepts for a deployment's parameters. (A
# discriminated union gave a oneOf, and a plain config, valid under both, was refused by the server.)
AnyTrainConfig = TrainConfig | CocaTrainConfig
