"""Config of ClipCap captioner training (`clipline train-captioner`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from clipline.pipelines import storage
from clipline.pipelines.config.train import TrainConfig
from clipline.pipelines.errors import ClipLineError

MappingKind = Literal["mlp", "transformer"]  # the keys of pipelines.models.clipcap.MAPPINGS


class CaptionerTrainConfig(TrainConfig):
    """Train a ClipCap captioner (Mokady et al., 2021): a frozen CLIP image tower, a mapping network from its
    image embedding to a prefix of LM input embeddings, and a GPT-2 causal LM, on the same shards and loop."""

    clip: str = Field(description="The CLIP checkpoint whose image tower is used frozen (a clipline checkpoint "
                      "folder, local or s3://).")
    mapping: MappingKind = Field(default="mlp", description="Mapping network: mlp (ClipCap's MLP, paper: with the "
                                 "LM fine-tuned, prefix 10) or transformer (learned constants through a Transformer "
                                 "encoder, paper: with the LM frozen, prefix 40).")
    prefix_length: int = Field(default=10, description="LM input positions the image becomes.")
    mapping_layers: int = Field(default=8, ge=1, description="Layers of the transformer mapping (ClipCap's 8).")
    lm: str = Field(default="tiny", description="The causal LM: a local GPT-2 folder (config.json, weights and "
                    "tokenizer files, as save_pretrained writes), 'tiny' (a small GPT-2 trained from scratch with "
                    "open_clip's tokenizer), or a JSON file of GPT-2 config values (n_layer, n_embd, n_head) to train "
                    "from scratch.")
    freeze_lm: bool = Field(default=False, description="Keep the LM fixed; only the mapping network trains.")
    max_caption_tokens: int = Field(default=32, ge=2, description="Caption tokens trained on (longer captions are "
                                    "cut), the end-of-text token included.")
    augment: bool = Field(default=False, description="open_clip's training augmentation (random resized crop) on "
                          "the images fed to the frozen tower.")
    val_data: str | None = Field(default=None, description="Validation shards: caption loss (mean token "
                                 "cross-entropy) at each checkpoint.")

    @field_validator("prefix_length")
    @classmethod
    def _positive_prefix(cls, value: int) -> int:
        if value < 1:
            raise ClipLineError(f"--prefix-length {value}: the mapping network needs at least one prefix position",
                                "give --prefix-length N with N >= 1 (ClipCap uses 10 with the MLP mapping, 40 with "
                                "the transformer)")
        return value

    @field_validator("clip")
    @classmethod
    def _absolute_clip(cls, value: str) -> str:
        return storage.absolute(value)

    @field_validator("lm")
    @classmethod
    def _known_lm(cls, value: str) -> str:
        from clipline.pipelines.models.caption_lm import check_lm  # torch-free config module: load on use

        return check_lm(value)

    def input_checkpoints(self) -> list[str]:
        return [*super().input_checkpoints(), self.clip]

    @model_validator(mode="after")
    def _check_captioner(self) -> CaptionerTrainConfig:
        contrastive = {"lock_image": self.lock_image, "distill_model": self.distill_model, "init": self.init,
                       "patch_dropout": self.patch_dropout, "loss siglip": self.loss == "siglip"}
        given = [name for name, value in contrastive.items() if value]
        if given:
            raise ValueError(f"{', '.join(given)}: contrastive-training options; the captioner's CLIP is --clip, "
                             "kept frozen")
        return self
