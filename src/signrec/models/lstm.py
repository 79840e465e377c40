"""An LSTM written from scratch in plain PyTorch, and the reference sign classifier built from it.

The math is Keras's and PyTorch's LSTM (gate order input, forget, cell, output; sigmoid gates)::

    z_t = x_t W_ih^T + h_{t-1} W_hh^T + b          # (batch, 4 * hidden)
    i, f, o = sigmoid(z_i), sigmoid(z_f), sigmoid(z_o);  g = act(z_g)
    c_t = f * c_{t-1} + i * g;  h_t = o * act(c_t)

with `act` tanh (Keras's default) or relu (the popular tutorial's choice). One bias vector per layer, as Keras
has, so the parameter count equals Keras's. The input projection for all time steps is one matrix product;
the per-step work is one small matrix product and a few element-wise operations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .. import layout

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}


class ScratchLSTM(nn.Module):
    """One LSTM layer. Input `(batch, time, input_size)`, output `(batch, time, hidden_size)`."""

    def __init__(self, input_size: int, hidden_size: int, activation: str = "tanh"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown LSTM activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
        self.input_size, self.hidden_size, self.activation = input_size, hidden_size, activation
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(4 * hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        h = self.hidden_size
        # Xavier-uniform per gate block (as Keras's glorot_uniform sees a (input, 4*hidden) kernel per gate).
        nn.init.xavier_uniform_(self.weight_ih)
        nn.init.xavier_uniform_(self.weight_hh)
        with torch.no_grad():
            self.bias.zero_()
            self.bias[h : 2 * h].fill_(1.0)  # forget-gate bias 1, as Keras's unit_forget_bias

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        batch, steps, _ = x.shape
        h_size = self.hidden_size
        act = ACTIVATIONS[self.activation]
        # All time steps' input projections in one matrix product: (batch, time, 4 * hidden).
        xz = torch.addmm(self.bias, x.reshape(batch * steps, -1), self.weight_ih.t()).view(batch, steps, -1)
        if state is None:
            h = x.new_zeros(batch, h_size)
            c = x.new_zeros(batch, h_size)
        else:
            h, c = state
        w_hh_t = self.weight_hh.t()
        outputs = []
        for t in range(steps):
            z = torch.addmm(xz[:, t], h, w_hh_t)  # (batch, 4 * hidden)
            gates = torch.sigmoid(z)
            i, f, o = gates[:, :h_size], gates[:, h_size : 2 * h_size], gates[:, 3 * h_size :]
            g = act(z[:, 2 * h_size : 3 * h_size])
            c = torch.addcmul(f * c, i, g)
            h = o * act(c)
            outputs.append(h)
        return torch.stack(outputs, dim=1)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, activation={self.activation}"


def last_valid(outputs: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """`(batch, hidden)`: each sequence's output at its true last frame (the final step when no lengths)."""
    if lengths is None:
        return outputs[:, -1]
    index = (lengths.to(outputs.device).long() - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, outputs.shape[-1])
    return outputs.gather(1, index).squeeze(1)


def pad_batch(
    sequences: list[torch.Tensor], side: str = "post", total: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad `(T_i, F)` tensors with zeros to `(batch, T, F)`, T = `total` or the longest; returns (padded, lengths).

    With `side="pre"` the zeros go first (Keras's default), so the final step is each sequence's last frame.
    """
    if side not in ("pre", "post"):
        raise ValueError(f"padding side must be 'pre' or 'post', got {side!r}")
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    steps = max(int(lengths.max()), total or 0)
    padded = sequences[0].new_zeros(len(sequences), steps, sequences[0].shape[-1])
    time = torch.arange(steps).unsqueeze(0)  # (1, T)
    if side == "post":
        mask = time < lengths.unsqueeze(1)
    else:
        mask = time >= (steps - lengths).unsqueeze(1)
    padded[mask] = torch.cat(sequences)  # rows in sequence order, time order
    return padded, lengths


@dataclass
class LSTMConfig:
    """The reference architecture: LSTM 64 -> 128 -> 64, Dense 64 -> 32 -> classes."""

    num_classes: int
    input_size: int = layout.NUM_FEATURES
    lstm_units: tuple[int, ...] = (64, 128, 64)
    dense_units: tuple[int, ...] = (64, 32)
    activation: str = "tanh"  # inside the LSTMs; "relu" as in the popular tutorial
    # "last_valid": read each sequence at its true last frame (padding cannot change the prediction);
    # "final": read the final padded step, as the seed model does.
    read: str = "last_valid"
    extra: dict = field(default_factory=dict)


class LSTMClassifier(nn.Module):
    """Stacked ScratchLSTMs, then dense layers with relu, then logits. Input `(batch, time, features)`."""

    def __init__(self, config: LSTMConfig):
        super().__init__()
        if config.read not in ("last_valid", "final"):
            raise ValueError(f"read must be 'last_valid' or 'final', got {config.read!r}")
        self.config = config
        sizes = (config.input_size, *config.lstm_units)
        self.lstms = nn.ModuleList(ScratchLSTM(a, b, config.activation) for a, b in zip(sizes, sizes[1:]))
        dense = []
        width = config.lstm_units[-1]
        for units in config.dense_units:
            dense += [nn.Linear(width, units), nn.ReLU()]
            width = units
        dense.append(nn.Linear(width, config.num_classes))
        self.head = nn.Sequential(*dense)
        for m in self.head:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        for lstm in self.lstms:
            x = lstm(x)  # (batch, time, units)
        last = last_valid(x, lengths if self.config.read == "last_valid" else None)
        return self.head(last)  # (batch, classes) logits
