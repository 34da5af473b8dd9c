"""What differs between training kinds, behind one seam: the model, how samples decode, and validation.

The loop, steps, losses, optimizer, checkpoints, metrics and fault tolerance
are shared; a kind says what model to build from its config, how a shard
sample becomes a model input, which checkpoint file holds which module, which
parameters train at a scaled learning rate, and how to validate.

- `image-text`: an open_clip CLIP model on images (TrainConfig).
- `video-text`: that CLIP's image tower on each frame plus a temporal head
  (pipelines.models.video), on video shards (VideoTrainConfig). Its checkpoints
  keep the CLIP open_clip-loadable and the temporal encoder in `temporal.safetensors`.
- `clipcap`: a ClipCap captioner (pipelines.models.clipcap) on a frozen CLIP, with
  its own loss (caption cross-entropy) through `TrainingModel.loss`
  (CaptionerTrainConfig).
- `coca`: an open_clip CoCa model (contrastive and captioning losses, CocaTrainConfig) on
  images; validated as image-text (contrastive loss and recall@1); its checkpoints
  are open_clip local-dir folders that `model.generate` captions with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch

from clipline.pipelines.config import CaptionerTrainConfig, CocaTrainConfig, TrainConfig, VideoTrainConfig
from clipline.pipelines.data.loader import Decode, image_sample
from clipline.pipelines.data.video_loader import video_sample
from clipline.pipelines.models.clipcap import CaptionLoss
from clipline.pipelines.models.registry import BuiltModel, build_model
from clipline.pipelines.models.tokens import tokenizer_files
from clipline.pipelines.models.video import TemporalEncoder, VideoCLIP, freeze_towers, is_tower_parameter
from clipline.pipelines.train import checkpoint as ckpt
from clipline.pipelines.train.clipcap import assemble_clipcap, validate_captions
from clipline.pipelines.train.embedding_rows import token_embeddings
from clipline.pipelines.train.optim import full_lr
from clipline.pipelines.train.step import model_kwargs
from clipline.pipelines.train.validate import validate, validate_retrieval

TEMPORAL_WEIGHTS = "temporal.safetensors"


@dataclass
class TrainingModel:
    """A built model and what the loop needs around it."""

    model: torch.nn.Module
    tokenizer: Callable
    decode_train: Decode
    decode_val: Decode
    open_clip_config: dict  # open_clip_config.json of the checkpoints
    weight_files: dict[str, torch.nn.Module]  # checkpoint file -> the module whose weights it holds
    lr_scale: Callable[[str], float] = field(default=full_lr)  # parameter name -> learning-rate factor
    teacher: torch.nn.Module | None = None  # distillation's frozen teacher
    loss: torch.nn.Module | None = None  # the kind's own loss over the model's output dict; None: contrastive
    files: dict[str, bytes] = field(default_factory=dict)  # other files each checkpoint carries (name -> bytes)
    # parameters whose gradient comes only from looking up the step's tokens: exchanged by used rows (embedding_rows)
    token_embeddings: tuple[str, ...] = ()


class TrainingKind(Protocol):
    config_type: type[TrainConfig]

    def build(self, config: TrainConfig) -> TrainingModel: ...

    def validate(self, model: torch.nn.Module, config: TrainConfig, built: TrainingModel,
                 device: torch.device) -> dict[str, float]: ...


def build_clip(config: TrainConfig, augment: bool) -> BuiltModel:
    """The open_clip model of `config.model` (from --init weights if given), seeded alike on every worker."""
    torch.manual_seed(config.seed)
    built = _from_checkpoint(config.init, config.model, augment=augment, **model_kwargs(config))
    built.model.set_grad_checkpointing(config.grad_checkpointing)
    return built


def _from_checkpoint(uri: str | None, model: str, **kwargs) -> BuiltModel:
    folder = ckpt.local_copy(uri) if uri else None
    try:
        return build_model(model, weights=folder, **kwargs)
    finally:
        if folder:
            ckpt.remove_local_copy(uri, folder)


def build_teacher(config: TrainConfig) -> torch.nn.Module | None:
    """The frozen teacher of distillation (any architecture: its checkpoint says which), in eval mode."""
    if not config.distill_model:
        return None
    teacher = _from_checkpoint(config.distill_model, config.model, augment=False).model.eval()
    teacher.requires_grad_(False)
    return teacher


def _open_clip_config(built: BuiltModel) -> dict:
    return {"model_cfg": built.model_cfg, "preprocess_cfg": built.preprocess_cfg}


class ImageText:
    config_type = TrainConfig

    def build(self, config: TrainConfig) -> TrainingModel:
        built = build_clip(config, augment=config.augment)
        if config.lock_image:  # LiT
            built.model.lock_image_tower(unlocked_groups=config.lock_image_unlocked_groups,
                                         freeze_bn_stats=config.lock_image_freeze_bn_stats)
        return TrainingModel(built.model, built.tokenizer, image_sample(built.preprocess_train),
                             image_sample(built.preprocess_val), _open_clip_config(built),
                             {ckpt.WEIGHTS: built.model}, teacher=build_teacher(config),
                             files=tokenizer_files(built.tokenizer), token_embeddings=token_embeddings(built.model))

    def validate(self, model, config, built, device) -> dict[str, float]:
        return validate(model, config, built.decode_val, built.tokenizer, device)


class Coca(ImageText):
    config_type = CocaTrainConfig  # built and validated as image-text; step.build_loss gives it CoCaLoss


class VideoText:
    config_type = VideoTrainConfig

    def build(self, config: VideoTrainConfig) -> TrainingModel:
        built = build_clip(config, augment=False)
        model = build_video_model(built, config)
        if config.freeze_image_tower:
            freeze_towers(model)
        frames = video_sample(built.preprocess_val, config.num_frames)  # one geometry for every frame of a clip
        return TrainingModel(model, built.tokenizer, frames, frames, _open_clip_config(built),
                             {ckpt.WEIGHTS: model.clip, TEMPORAL_WEIGHTS: model.temporal},
                             lambda name: config.image_lr_scale if is_tower_parameter(name) else 1.0,
                             token_embeddings=token_embeddings(model))

    def validate(self, model, config, built, device) -> dict[str, float]:
        return validate_retrieval(model, config, built.decode_val, built.tokenizer, device)


def build_video_model(built: BuiltModel, config: VideoTrainConfig) -> VideoCLIP:
    """The CLIP of `built` with a temporal encoder of the configured head (seeded alike on every worker)."""
    torch.manual_seed(config.seed + 1)
    temporal = TemporalEncoder(config.head, built.model_cfg["embed_dim"], config.num_frames, config.head_layers)
    return VideoCLIP(built.model, temporal)


class ClipCapKind:
    config_type = CaptionerTrainConfig

    def build(self, config: CaptionerTrainConfig) -> TrainingModel:
        clip = build_clip(config.model_copy(update={"init": config.clip}), augment=config.augment)
        parts = assemble_clipcap(clip.model, clip.model_cfg["embed_dim"], config)
        return TrainingModel(parts.model, parts.tokens, image_sample(clip.preprocess_train),
                             image_sample(clip.preprocess_val), _open_clip_config(clip),
                             {ckpt.WEIGHTS: clip.model, **parts.weight_files}, loss=CaptionLoss(), files=parts.files)

    def validate(self, model, config, built, device) -> dict[str, float]:
        return validate_captions(model, config, built.decode_val, built.tokenizer, device)


TRAINING_KINDS: dict[str, TrainingKind] = {"image-text": ImageText(), "video-text": VideoText(), "coca": Coca(),
                                           "clipcap": ClipCapKind()}


def kind_of(config: TrainConfig) -> str:
    """The registry key of the kind that trains this config (by its exact type)."""
    return next(name for name, kind in TRAINING_KINDS.items() if type(config) is kind.config_type)


def load_video_model(uri: str) -> TrainingModel:
    """A trained video-text model from its checkpoint: the CLIP through open_clip, then the temporal encoder."""
    loaded = ckpt.load_checkpoint(uri, files=[TEMPORAL_WEIGHTS])
    config = VideoTrainConfig.model_validate_json(loaded.state["config"])
    built = VideoText().build(config.model_copy(update={"init": uri}))
    built.model.temporal.load_state_dict(loaded.files[TEMPORAL_WEIGHTS])
    built.model.eval()
    return built
