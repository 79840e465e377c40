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

import itertools
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import layout
from ..batching import last_valid, left_align

ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}


def _act_grad(activation: str, activated: torch.Tensor) -> torch.Tensor:
    """d act(z) / dz, written in terms of act(z)."""
    if activation == "tanh":
        return 1 - activated * activated
    return (activated > 0).to(activated.dtype)


def _act(z: torch.Tensor, activation: str) -> torch.Tensor:
    return torch.tanh(z) if activation == "tanh" else torch.relu(z)


def _recur(
    xz: torch.Tensor, w_hh: torch.Tensor, activation: str, keep: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """The recurrence over time from precomputed input projections `xz (batch, time, 4H)`.

    Returns outputs h (B, T, H), gates after activation [i, f, g, o] (B, T, 4H), cells c (B, T, H) and
    act(c) (B, T, H); the last three are what the hand-written backward needs (None unless `keep`).
    Written so that TorchScript can compile it (`_compiled_recur`), which removes most of the Python
    dispatch cost of the many small per-step operations.
    """
    batch, steps, four_h = xz.shape
    h_size = four_h // 4
    h = xz.new_zeros(batch, h_size)
    c = xz.new_zeros(batch, h_size)
    w_hh_t = w_hh.t()
    hs: list[torch.Tensor] = []
    gates_all: list[torch.Tensor] = []
    cs: list[torch.Tensor] = []
    acs: list[torch.Tensor] = []
    for t in range(steps):
        z = torch.addmm(xz[:, t], h, w_hh_t)  # (batch, 4H)
        gates = torch.sigmoid(z)
        g = _act(z[:, 2 * h_size : 3 * h_size], activation)
        c = torch.addcmul(gates[:, h_size : 2 * h_size] * c, gates[:, :h_size], g)
        ac = _act(c, activation)
        h = gates[:, 3 * h_size :] * ac
        hs.append(h)
        if keep:
            gates_all.append(torch.cat([gates[:, : 2 * h_size], g, gates[:, 3 * h_size :]], dim=1))
            cs.append(c)
            acs.append(ac)
    if not keep:
        return torch.stack(hs, 1), None, None, None
    return torch.stack(hs, 1), torch.stack(gates_all, 1), torch.stack(cs, 1), torch.stack(acs, 1)


_COMPILED: list = []


def _compiled_recur():
    """`_recur` compiled by TorchScript once per process (the same source; about 1.6x faster per step)."""
    if not _COMPILED:
        try:
            _COMPILED.append(torch.jit.script(_recur))
        except Exception:  # noqa: BLE001 - TorchScript unavailable: the plain function computes the same
            _COMPILED.append(_recur)
    return _COMPILED[0]


class _Recurrence(torch.autograd.Function):
    """The LSTM recurrence with a hand-written backward (backpropagation through time).

    Autograd would record about ten nodes per time step; here the backward loop does six small operations
    per step, and the element-wise derivative factors for all steps are computed at once, outside the loop.
    """

    @staticmethod
    def forward(ctx, xz: torch.Tensor, w_hh: torch.Tensor, activation: str) -> torch.Tensor:  # type: ignore[override]
        hs, gates, cs, acs = _compiled_recur()(xz, w_hh, activation, True)
        ctx.activation = activation
        ctx.save_for_backward(w_hh, hs, gates, cs, acs)
        return hs

    @staticmethod
    def backward(ctx, d_hs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:  # type: ignore[override]
        w_hh, hs, gates, cs, acs = ctx.saved_tensors
        batch, steps, h_size = hs.shape
        i, f, g, o = gates.split(h_size, dim=2)
        c_prev = torch.cat([cs.new_zeros(batch, 1, h_size), cs[:, :-1]], dim=1)
        h_prev = torch.cat([hs.new_zeros(batch, 1, h_size), hs[:, :-1]], dim=1)
        # dz = [dc, dc, dc, dh_o] * factor, where factor folds in the gate derivatives for every step at once.
        sig = gates * (1 - gates)
        factor = torch.cat([
            g * sig[..., :h_size],  # input gate: dz_i = dc * g * i(1-i)
            c_prev * sig[..., h_size : 2 * h_size],  # forget gate: dz_f = dc * c_prev * f(1-f)
            i * _act_grad(ctx.activation, g),  # candidate: dz_g = dc * i * act'(z_g)
            acs * sig[..., 3 * h_size :],  # output gate: dz_o = dh * act(c) * o(1-o)
        ], dim=2)  # fmt: skip
        dc_from_h = o * _act_grad(ctx.activation, acs)  # dc += dh * o * act'(c)
        dh_next = hs.new_zeros(batch, h_size)
        dc_next = hs.new_zeros(batch, h_size)
        dzs = []
        for t in range(steps - 1, -1, -1):
            dh = d_hs[:, t] + dh_next
            dc = torch.addcmul(dc_next, dh, dc_from_h[:, t])
            dz = torch.cat([dc, dc, dc, dh], dim=1) * factor[:, t]
            dh_next = dz @ w_hh
            dc_next = dc * f[:, t]
            dzs.append(dz)
        d_xz = torch.stack(dzs[::-1], dim=1)  # (B, T, 4H)
        d_w_hh = d_xz.reshape(-1, 4 * h_size).t() @ h_prev.reshape(-1, h_size)
        return d_xz, d_w_hh, None


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, _ = x.shape
        # All time steps' input projections in one matrix product: (batch, time, 4 * hidden).
        xz = torch.addmm(self.bias, x.reshape(batch * steps, -1), self.weight_ih.t()).view(batch, steps, -1)
        if torch.jit.is_tracing():  # ONNX export: trace the plain loop (unrolled over the fixed length)
            return _recur(xz, self.weight_hh, self.activation, False)[0]
        if torch.is_grad_enabled() and (xz.requires_grad or self.weight_hh.requires_grad):
            return _Recurrence.apply(xz, self.weight_hh, self.activation)
        return _compiled_recur()(xz, self.weight_hh, self.activation, False)[0]

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, activation={self.activation}"


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
        self.lstms = nn.ModuleList(ScratchLSTM(a, b, config.activation) for a, b in itertools.pairwise(sizes))
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

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`x (batch, time, features)`, `mask (batch, time)` True on real frames -> `(batch, classes)` logits."""
        if self.config.read == "final":  # the seed's way: every step, padding included, and the final one read
            for lstm in self.lstms:
                x = lstm(x)
            return self.head(x[:, -1])
        lengths = None
        if mask is not None:
            x, lengths = left_align(x, mask)  # the recurrence then never sees padding before a real frame
        for lstm in self.lstms:
            x = lstm(x)  # (batch, time, units)
        return self.head(x[:, -1] if lengths is None else last_valid(x, lengths))
