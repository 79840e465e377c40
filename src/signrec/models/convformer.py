"""Stronger models than the reference LSTM, for sequences of any length (a mask, not padding, decides what
the prediction sees).

- `convformer`: 1D depthwise-convolution blocks and transformer encoder layers, in the style of the models that
  won Google's 2023 isolated-sign-recognition competition (Kaggle "ASL Signs"), with masked mean pooling.
- `bigru`: a bidirectional GRU with attention pooling over the valid frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def valid_mask(lengths: torch.Tensor | None, batch: int, steps: int, device: torch.device) -> torch.Tensor:
    """(batch, steps) bool, True on real frames."""
    if lengths is None:
        return torch.ones(batch, steps, dtype=torch.bool, device=device)
    return torch.arange(steps, device=device).unsqueeze(0) < lengths.to(device).unsqueeze(1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


@dataclass
class ConvformerConfig:
    num_classes: int
    input_size: int
    dim: int = 192
    stages: int = 2  # each: `convs` convolution blocks, then one transformer layer
    convs: int = 2
    kernel: int = 15
    heads: int = 4
    dropout: float = 0.3
    stem_dropout: float = 0.1


class ConvBlock(nn.Module):
    """Pre-norm residual block: Linear + GLU, depthwise conv over time (padded frames zeroed), Linear."""

    def __init__(self, dim: int, kernel: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.expand = nn.Linear(dim, 2 * dim)
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.bn = nn.BatchNorm1d(dim)
        self.project = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = nn.functional.glu(self.expand(self.norm(x)), dim=-1)
        y = y * mask.unsqueeze(-1)
        y = self.bn(self.conv(y.transpose(1, 2))).transpose(1, 2)
        y = self.project(nn.functional.silu(y))
        return x + self.drop(y) * mask.unsqueeze(-1)


class Convformer(nn.Module):
    def __init__(self, config: ConvformerConfig):
        super().__init__()
        self.config = config
        d = config.dim
        self.stem = nn.Sequential(nn.Linear(config.input_size, d), nn.LayerNorm(d), nn.Dropout(config.stem_dropout))
        blocks: list[nn.Module] = []
        for _ in range(config.stages):
            blocks += [ConvBlock(d, config.kernel, config.dropout) for _ in range(config.convs)]
            blocks.append(nn.TransformerEncoderLayer(d, config.heads, 2 * d, config.dropout, activation="gelu",
                                                     batch_first=True, norm_first=True))  # fmt: skip
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(d, config.num_classes))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        mask = valid_mask(lengths, x.shape[0], x.shape[1], x.device)
        h = self.stem(x) * mask.unsqueeze(-1)
        for block in self.blocks:
            if isinstance(block, ConvBlock):
                h = block(h, mask)
            else:
                h = block(h, src_key_padding_mask=~mask)
        return self.head(masked_mean(self.norm(h), mask))


@dataclass
class BiGRUConfig:
    num_classes: int
    input_size: int
    hidden: int = 128
    layers: int = 2
    dropout: float = 0.3


class BiGRU(nn.Module):
    """Bidirectional GRU over the valid frames (packed), attention pooling, a linear head."""

    def __init__(self, config: BiGRUConfig):
        super().__init__()
        self.config = config
        self.stem = nn.Sequential(nn.Linear(config.input_size, config.hidden), nn.LayerNorm(config.hidden))
        self.gru = nn.GRU(config.hidden, config.hidden, config.layers, batch_first=True, bidirectional=True,
                          dropout=config.dropout if config.layers > 1 else 0.0)  # fmt: skip
        self.score = nn.Linear(2 * config.hidden, 1)
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(2 * config.hidden, config.num_classes))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        batch, steps, _ = x.shape
        mask = valid_mask(lengths, batch, steps, x.device)
        h = self.stem(x)
        if lengths is not None:
            packed = nn.utils.rnn.pack_padded_sequence(h, lengths.cpu().clamp(min=1), batch_first=True,
                                                       enforce_sorted=False)  # fmt: skip
            h, _ = nn.utils.rnn.pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=steps)
        else:
            h = self.gru(h)[0]
        scores = self.score(h).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1).unsqueeze(-1)
        return self.head((weights * h).sum(1))
