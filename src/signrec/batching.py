"""Batching: how sequences of different lengths become one batch, and how a model finds its real frames.

Every batch is `(x, mask)`: `x (batch, time, features)` zero-padded, and `mask (batch, time)` True on real
frames, wherever the padding went ("post": zeros after each clip, the default; "pre": zeros first, as Keras's
`pad_sequences` does). Models read frames only through the mask (`left_align`, `last_valid`, or the mask
itself), so the side of the padding cannot change what they compute. Training, evaluation, prediction, live
recognition and ONNX export all batch here; numpy only, so that ONNX prediction needs no PyTorch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

SIDES = ("post", "pre")


def check_side(side: str) -> str:
    if side not in SIDES:
        raise ValueError(f"padding side must be 'post' or 'pre', got {side!r}")
    return side


def pad(sequences: Sequence[np.ndarray], side: str = "post", total: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`(T_i, F)` arrays -> `x (batch, T, F)` float32 and `mask (batch, T)` bool; T = `total` or the longest.

    Sequences longer than `total` are an error: cutting is the preprocessing's decision, not the batch's.
    """
    check_side(side)
    if not sequences:
        raise ValueError("cannot batch zero sequences")
    lengths = np.array([len(s) for s in sequences])
    steps = max(int(lengths.max()), total or 0)
    if total is not None and lengths.max() > total:
        raise ValueError(f"a sequence of {lengths.max()} frames does not fit a batch of {total} frames")
    features = sequences[0].shape[-1]
    x = np.zeros((len(sequences), steps, features), dtype=np.float32)
    mask = np.zeros((len(sequences), steps), dtype=bool)
    for i, s in enumerate(sequences):
        n = len(s)
        where = slice(0, n) if side == "post" else slice(steps - n, steps)
        x[i, where] = s
        mask[i, where] = True
    return x, mask


class collate:
    """A DataLoader `collate_fn` for `(sequence, label)` items: `(x, mask, labels)` tensors. A class, not a
    closure, so that spawned data-loading workers can receive it."""

    def __init__(self, side: str = "post", total: int | None = None):
        self.side, self.total = check_side(side), total

    def __call__(self, items: list[tuple[np.ndarray, int]]) -> tuple[Any, Any, Any]:
        import torch

        xs, ys = zip(*items, strict=True)
        x, mask = pad(xs, self.side, self.total)
        return torch.from_numpy(x), torch.from_numpy(mask), torch.as_tensor(ys, dtype=torch.long)


# --- used inside models (torch) -------------------------------------------------------------------------------


def full_mask(x: Any) -> Any:
    """The mask of a batch with no padding."""
    import torch

    return torch.ones(x.shape[0], x.shape[1], dtype=torch.bool, device=x.device)


def left_align(x: Any, mask: Any) -> tuple[Any, Any]:
    """Move each sequence's real frames to the front, in order: `(x_aligned, lengths)`.

    A no-op for post-padded batches; for pre-padded ones (or any mask) the result is what post-padding gives.
    """
    import torch

    steps = x.shape[1]
    time = torch.arange(steps, device=x.device).unsqueeze(0)  # (1, T)
    key = torch.where(mask, time, time + steps)  # real frames first, each in time order (keys are unique)
    order = key.argsort(dim=1)
    aligned = x.gather(1, order.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    lengths = mask.sum(dim=1)
    return aligned * (time < lengths.unsqueeze(1)).unsqueeze(-1).to(x.dtype), lengths


def mix(x: Any, mask: Any, partner: Any, weight: float) -> tuple[Any, Any]:
    """Mixup of a batch with itself reordered: `weight * clip + (1 - weight) * clip partner[i]`, the partner's real
    frames stretched or squeezed to each clip's own length n (frame t takes the partner's frame floor(t * m / n) of
    its m), so that the two signs start together and span the same frames. Returns a post-padded `(x, mask)` with
    each clip's own frames."""
    import torch

    aligned, lengths = left_align(x, mask)
    steps = x.shape[1]
    time = torch.arange(steps, device=x.device).unsqueeze(0)  # (1, T)
    theirs = lengths[partner].unsqueeze(1)
    source = (time * theirs // lengths.unsqueeze(1).clamp(min=1)).clamp(max=(theirs - 1).clamp(min=0))
    other = aligned[partner].gather(1, source.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    real = time < lengths.unsqueeze(1)
    return (weight * aligned + (1 - weight) * other) * real.unsqueeze(-1).to(x.dtype), real


def last_valid(outputs: Any, lengths: Any) -> Any:
    """`(batch, hidden)`: each left-aligned sequence's output at its true last frame."""
    index = (lengths.to(outputs.device).long() - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, outputs.shape[-1])
    return outputs.gather(1, index).squeeze(1)


def masked_mean(x: Any, mask: Any) -> Any:
    """Mean over the real frames: `(batch, time, d)`, `(batch, time)` -> `(batch, d)`."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)
