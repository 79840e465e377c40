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

from ..batching import full_mask, left_align, masked_mean


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
    drop_path: float = 0.0  # stochastic depth: the last block's residual branch is dropped this often, earlier ones less
    head_dropout: float | None = None  # dropout before the output layer (None: `dropout`)


def dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Training dropout: each value zeroed with probability `p`, the others scaled by 1 / (1 - p), as
    `nn.functional.dropout(x, p, training=True)` does, from uniform draws: on CPU torch's own draws Bernoulli values
    one by one (PyTorch 2.13), and `scaled_dot_product_attention` with dropout leaves its fused kernel; a training
    step is about 1.2x faster (BENCHMARKS.md, Training step). Elsewhere (a GPU), torch's own."""
    if x.device.type != "cpu":
        return nn.functional.dropout(x, p, training=True)
    return x * torch.rand_like(x).ge_(p).mul_(1 / (1 - p))


class Dropout(nn.Module):
    """`nn.Dropout` through `dropout` (the same function, faster on CPU); identity in evaluation."""

    def __init__(self, p: float):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p) if self.training and self.p > 0 else x

    def extra_repr(self) -> str:
        return f"p={self.p}"


class DropPath(nn.Module):
    """Stochastic depth: in training, a sample's whole residual branch is dropped with probability `p` (and the
    kept ones scaled by 1 / (1 - p)); identity in evaluation."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = (torch.rand(x.shape[0], *([1] * (x.dim() - 1)), device=x.device) >= self.p).to(x.dtype)
        return x * keep / (1 - self.p)


class ConvBlock(nn.Module):
    """Pre-norm residual block: Linear + GLU, depthwise conv over time (padded frames zeroed), Linear."""

    def __init__(self, dim: int, kernel: int, dropout: float, drop_path: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.expand = nn.Linear(dim, 2 * dim)
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=dim)
        self.bn = nn.BatchNorm1d(dim)
        self.project = nn.Linear(dim, dim)
        self.drop = Dropout(dropout)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = nn.functional.glu(self.expand(self.norm(x)), dim=-1)
        y = y * mask.unsqueeze(-1)
        y = self.bn(self.conv(y.transpose(1, 2))).transpose(1, 2)
        y = self.project(nn.functional.silu(y))
        return x + self.drop_path(self.drop(y)) * mask.unsqueeze(-1)


class SelfAttention(nn.Module):
    """Multi-head self-attention with key padding, written with `scaled_dot_product_attention` and shapes read
    from the input, so that an ONNX export keeps a dynamic time axis (nn.MultiheadAttention's traced graph fixes
    the length it was traced with). Parameters are named as nn.MultiheadAttention's."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads, self.dropout = heads, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, steps, dim = x.shape
        q, k, v = nn.functional.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        split = lambda t: t.reshape(batch, steps, self.heads, dim // self.heads).transpose(1, 2)
        q, k, v, keys = split(q), split(k), split(v), mask[:, None, None, :]
        if self.training and self.dropout > 0 and x.device.type == "cpu":  # the weights dropped out, as the kernel would
            weights = (q @ k.transpose(-1, -2) * (dim // self.heads) ** -0.5).masked_fill(~keys, float("-inf"))
            y = dropout(weights.softmax(dim=-1), self.dropout) @ v
        else:
            y = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=keys,
                                                           dropout_p=self.dropout if self.training else 0.0)  # fmt: skip
        return self.out_proj(y.transpose(1, 2).reshape(batch, steps, dim))


class EncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer (attention, then a GELU feed-forward), the same function and parameter
    names as `nn.TransformerEncoderLayer(norm_first=True, activation="gelu", batch_first=True)`."""

    def __init__(self, dim: int, heads: int, hidden: int, dropout: float, drop_path: float = 0.0):
        super().__init__()
        self.drop_path = DropPath(drop_path)
        self.self_attn = SelfAttention(dim, heads, dropout)
        self.linear1, self.linear2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout, self.dropout1, self.dropout2 = Dropout(dropout), Dropout(dropout), Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`x (batch, time, dim)`, `mask (batch, time)` True on real frames (padded ones are never attended to)."""
        x = x + self.drop_path(self.dropout1(self.self_attn(self.norm1(x), mask)))
        ff = self.linear2(self.dropout(nn.functional.gelu(self.linear1(self.norm2(x)))))
        return x + self.drop_path(self.dropout2(ff))


class Convformer(nn.Module):
    def __init__(self, config: ConvformerConfig):
        super().__init__()
        self.config = config
        d = config.dim
        self.stem = nn.Sequential(nn.Linear(config.input_size, d), nn.LayerNorm(d), Dropout(config.stem_dropout))
        n = config.stages * (config.convs + 1)
        rates = iter(config.drop_path * i / max(1, n - 1) for i in range(n))  # deeper blocks are dropped more
        blocks: list[nn.Module] = []
        for _ in range(config.stages):
            blocks += [ConvBlock(d, config.kernel, config.dropout, next(rates)) for _ in range(config.convs)]
            blocks.append(EncoderLayer(d, config.heads, 2 * d, config.dropout, next(rates)))
        self.blocks = nn.ModuleList(blocks)
        self.norm = nn.LayerNorm(d)
        head_dropout = config.dropout if config.head_dropout is None else config.head_dropout
        self.head = nn.Sequential(Dropout(head_dropout), nn.Linear(d, config.num_classes))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`x (batch, time, features)`, `mask (batch, time)` True on real frames -> `(batch, classes)` logits."""
        mask = full_mask(x) if mask is None else mask
        h = self.stem(x) * mask.unsqueeze(-1)
        for block in self.blocks:
            h = block(h, mask)
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

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`x (batch, time, features)`, `mask (batch, time)` True on real frames -> `(batch, classes)` logits."""
        steps = x.shape[1]
        if mask is not None:
            x, lengths = left_align(x, mask)
            mask = torch.arange(steps, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
        else:
            mask = full_mask(x)
        h = self.stem(x)
        if not bool(mask.all()):
            packed = nn.utils.rnn.pack_padded_sequence(h, mask.sum(1).cpu().clamp(min=1), batch_first=True,
                                                       enforce_sorted=False)  # fmt: skip
            h, _ = nn.utils.rnn.pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=steps)
        else:
            h = self.gru(h)[0]
        scores = self.score(h).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1).unsqueeze(-1)
        return self.head((weights * h).sum(1))
