"""ClipCap (Mokady et al., 2021): a frozen CLIP image embedding, mapped to a prefix of LM input embeddings.

Two mapping networks, as the paper's:
- `mlp`: Linear(embed, lm_dim * prefix / 2), Tanh, Linear(..., lm_dim * prefix).
- `transformer`: the embedding projected to `prefix_length` tokens, followed by
  `prefix_length` learned constants; a Transformer encoder runs over both and
  the constants' positions are the prefix.
The CLIP embedding is L2-normalised first (the paper feeds CLIP's raw
embedding; a tiny CLIP's raw scale is arbitrary, the normalised one is not).
The LM sees [prefix; caption tokens] and is trained to predict the caption.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class MappingSpec:
    embed_dim: int  # CLIP's image embedding
    lm_dim: int  # the LM's input embedding width
    prefix_length: int
    num_layers: int  # of the transformer mapping
    num_heads: int  # of the transformer mapping


class MlpMapping(nn.Module):
    def __init__(self, spec: MappingSpec):
        super().__init__()
        self.spec = spec
        width = spec.lm_dim * spec.prefix_length
        self.net = nn.Sequential(nn.Linear(spec.embed_dim, width // 2), nn.Tanh(), nn.Linear(width // 2, width))

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.net(embedding).view(len(embedding), self.spec.prefix_length, self.spec.lm_dim)


class TransformerMapping(nn.Module):
    def __init__(self, spec: MappingSpec):
        super().__init__()
        self.spec = spec
        self.project = nn.Linear(spec.embed_dim, spec.lm_dim * spec.prefix_length)
        self.constants = nn.Parameter(torch.randn(spec.prefix_length, spec.lm_dim))
        layer = nn.TransformerEncoderLayer(spec.lm_dim, spec.num_heads, dim_feedforward=2 * spec.lm_dim,
                                           dropout=0.0, batch_first=True, norm_first=True)  # ClipCap's mlp_ratio 2
        self.encoder = nn.TransformerEncoder(layer, spec.num_layers, enable_nested_tensor=False)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        tokens = self.project(embedding).view(len(embedding), self.spec.prefix_length, self.spec.lm_dim)
        constants = self.constants.expand(len(embedding), -1, -1)
        return self.encoder(torch.cat([tokens, constants], dim=1))[:, self.spec.prefix_length:]


MAPPINGS: dict[str, type[nn.Module]] = {"mlp": MlpMapping, "transformer": TransformerMapping}


class ClipCap(nn.Module):
    """CLIP (frozen, always in eval mode) + mapping + LM. `forward(images, tokens)` gives the logits that predict
    each caption token, and the tokens as labels (padding is IGNORE)."""

    def __init__(self, clip: nn.Module, mapping: nn.Module, lm: nn.Module):
        super().__init__()
        self.clip, self.mapping, self.lm = clip, mapping, lm
        self.clip.requires_grad_(False)
        self.clip.eval()

    def train(self, mode: bool = True) -> ClipCap:
        super().train(mode)
        self.clip.eval()
        return self

    def prefix(self, images: torch.Tensor) -> torch.Tensor:
        """The prefix embeddings (batch, prefix length, LM width) of `images`."""
        with torch.no_grad():
            embedding = F.normalize(self.clip.encode_image(images), dim=-1)
        return self.mapping(embedding)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        prefix = self.prefix(images)
        words = self.lm.get_input_embeddings()(tokens.clamp(min=0))
        # Position prefix_length - 1 + i predicts caption token i: the last len + 1 positions but the very last
        # (the output layer, over the whole vocabulary, runs on those positions alone).
        logits = self.lm(inputs_embeds=torch.cat([prefix, words], dim=1), logits_to_keep=tokens.shape[1] + 1).logits
        return {"logits": logits[:, :-1], "labels": tokens}


class CaptionLoss(nn.Module):
    """Cross-entropy of the caption tokens (padding ignored), mean over tokens; named terms as open_clip's losses."""

    def forward(self, logits: torch.Tensor, labels: torch.Tensor, output_dict: bool = False):
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100)
        return {"caption_loss": loss} if output_dict else loss


CONFIG_FILE = "clipcap_config.json"  # in each checkpoint folder: what load_clipcap needs beside the weights
MAPPING_WEIGHTS = "clipcap_mapping.safetensors"
LM_WEIGHTS = "clipcap_lm.safetensors"
TOKENIZER_FOLDER = "clipcap_tokenizer"  # a pretrained LM's tokenizer files


@dataclass(frozen=True)
class ClipCapConfig:
    """Everything but the weights that rebuilds a trained ClipCap (the CLIP comes from its open_clip files)."""

    mapping: str  # a key of MAPPINGS
    mapping_spec: MappingSpec
    lm_config: dict  # transformers' GPT2Config.to_dict()
    tokenizer: str  # "open_clip", or "pretrained": files in TOKENIZER_FOLDER
    max_caption_tokens: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> ClipCapConfig:
        values = json.loads(text)
        return cls(**{**values, "mapping_spec": MappingSpec(**values["mapping_spec"])})

    def build(self, clip: nn.Module, lm: nn.Module | None = None) -> ClipCap:
        """The ClipCap around `clip`: this mapping, and `lm` (default: a fresh LM of lm_config)."""
        from transformers import GPT2Config, GPT2LMHeadModel

        lm = lm if lm is not None else GPT2LMHeadModel(GPT2Config.from_dict(self.lm_config))
        return ClipCap(clip, MAPPINGS[self.mapping](self.mapping_spec), lm)
