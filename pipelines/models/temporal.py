"""Temporal heads: frame embeddings (batch, frames, dim) -> one clip embedding (batch, dim).

CLIP4Clip's three similarity calculators, by name: `mean` pools the frames and
cannot see their order; `lstm` and `transformer` read the frames in sequence and
add their output to the frames (a residual connection, so training starts near
mean pooling) before pooling. The learned position embeddings that give the
heads the time signal are added by the video model, before the head.
"""

from __future__ import annotations

import torch
from torch import nn

HEAD_DIM = 64  # attention head width of the transformer head (CLIP's)


class MeanHead(nn.Module):
    """Mean pooling over frames: no parameters, the same embedding for any frame order."""

    def __init__(self, dim: int, layers: int) -> None:
        super().__init__()

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return frames.mean(dim=1)


class LSTMHead(nn.Module):
    """An LSTM over the frames, its outputs added to the frames, then mean pooling (CLIP4Clip's seqLSTM)."""

    def __init__(self, dim: int, layers: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, num_layers=layers, batch_first=True)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        self.lstm.flatten_parameters()  # DDP replicas on GPU leave the weights non-contiguous
        out, _ = self.lstm(frames)
        return (out + frames).mean(dim=1)


class TransformerHead(nn.Module):
    """A pre-norm Transformer encoder over the frames, plus the frames, then mean pooling (CLIP4Clip's seqTransf)."""

    def __init__(self, dim: int, layers: int) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(dim, max(1, dim // HEAD_DIM), dim_feedforward=4 * dim, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return (self.encoder(frames) + frames).mean(dim=1)


TEMPORAL_HEADS: dict[str, type[nn.Module]] = {"mean": MeanHead, "lstm": LSTMHead, "transformer": TransformerHead}
