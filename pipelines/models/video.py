"""A video-text model from a CLIP model: its image tower on each frame, a time signal, a temporal head.

The clip embedding follows CLIP4Clip: normalized frame embeddings from the
image tower, plus learned temporal position embeddings, through a temporal head
(pipelines.models.temporal), normalized again. Text goes through the same CLIP's
text tower. `forward` returns open_clip's output dict (the clip embedding under
`image_features`), so open_clip's losses and clipline's training step take it
unchanged.

The CLIP part and the temporal part are kept apart (`clip`, `temporal`) so a
checkpoint stores the CLIP as an open_clip-loadable model and the temporal part
beside it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from clipline.pipelines.models.temporal import TEMPORAL_HEADS

POSITION_INIT_STD = 0.01  # CLIP's own positional embeddings start at this scale


class TemporalEncoder(nn.Module):
    """Learned position embeddings, added to each frame's embedding, then the temporal head."""

    def __init__(self, head: str, dim: int, num_frames: int, layers: int) -> None:
        super().__init__()
        self.position = nn.Parameter(torch.randn(num_frames, dim) * POSITION_INIT_STD)
        self.head = TEMPORAL_HEADS[head](dim, layers)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(batch, frames, dim) -> (batch, dim)."""
        return self.head(frames + self.position[: frames.shape[1]])


class VideoCLIP(nn.Module):
    """CLIP's towers and temperature, with a temporal encoder between the image tower and the loss."""

    def __init__(self, clip: nn.Module, temporal: TemporalEncoder) -> None:
        super().__init__()
        self.clip = clip
        self.temporal = temporal

    @property
    def logit_scale(self) -> nn.Parameter:
        return self.clip.logit_scale

    def encode_video(self, frames: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """(batch, frames, 3, H, W) -> (batch, dim)."""
        batch, num_frames = frames.shape[:2]
        per_frame = self.clip.encode_image(frames.flatten(0, 1), normalize=True)
        clip = self.temporal(per_frame.view(batch, num_frames, -1))
        return F.normalize(clip, dim=-1) if normalize else clip

    def encode_text(self, tokens: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        return self.clip.encode_text(tokens, normalize=normalize)

    def forward(self, frames: torch.Tensor, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"image_features": self.encode_video(frames), "text_features": self.encode_text(tokens),
               "logit_scale": self.clip.logit_scale.exp()}
        if getattr(self.clip, "logit_bias", None) is not None:
            out["logit_bias"] = self.clip.logit_bias
        return out


TRAINED_WHEN_FROZEN = ("visual.proj", "text_projection", "logit_scale", "logit_bias")


def is_tower_parameter(name: str) -> bool:
    """A parameter of the CLIP towers: under `clip.`, but not a projection or the temperature."""
    return name.startswith("clip.") and name.removeprefix("clip.") not in TRAINED_WHEN_FROZEN


def freeze_towers(model: VideoCLIP) -> None:
    """Keep the CLIP towers fixed (no gradients); the projections and the temperature still train."""
    for name, param in model.named_parameters():
        if is_tower_parameter(name):
            param.requires_grad_(False)
