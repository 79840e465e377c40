"""Forward+backward time of the from-scratch LSTM stack against torch.nn.LSTM and a naive per-step cell.

    python benchmarks/bench_lstm.py [--repeat 15] [--device cpu|cuda]

Reference shapes: batch 32, 1662 features, 30 and 120 frames, LSTM 64 -> 128 -> 64. Warm-up, then the median
of `--repeat` runs of each, measured side by side in one process.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, markdown_table

from signrec.models.lstm import ScratchLSTM

UNITS = (64, 128, 64)


class NaiveLSTM(nn.Module):
    """The textbook cell: four Linear gates per step on [x_t, h], projections inside the time loop."""

    def __init__(self, input_size: int, hidden: int):
        super().__init__()
        self.gates = nn.ModuleList(nn.Linear(input_size + hidden, hidden) for _ in range(4))
        self.hidden = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.new_zeros(x.shape[0], self.hidden)
        c = x.new_zeros(x.shape[0], self.hidden)
        out = []
        for t in range(x.shape[1]):
            xh = torch.cat([x[:, t], h], dim=1)
            i, f, g, o = (gate(xh) for gate in self.gates)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            out.append(h)
        return torch.stack(out, 1)


class Stack(nn.Module):
    def __init__(self, kind: str, features: int):
        super().__init__()
        sizes = (features, *UNITS)
        make = {
            "signrec ScratchLSTM": lambda a, b: ScratchLSTM(a, b),
            "torch.nn.LSTM": lambda a, b: nn.LSTM(a, b, batch_first=True),
            "naive per-step cell": lambda a, b: NaiveLSTM(a, b),
        }[kind]
        self.layers = nn.ModuleList(make(a, b) for a, b in itertools.pairwise(sizes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
            x = x[0] if isinstance(x, tuple) else x
        return x[:, -1]


def time_it(model: nn.Module, x: torch.Tensor, repeat: int) -> float:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        model(x).sum().backward()
        if x.is_cuda:
            torch.cuda.synchronize()

    for _ in range(3):
        step()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    for frames in (30, 120):
        x = torch.randn(args.batch, frames, 1662, device=args.device)
        times = {}
        for kind in ("torch.nn.LSTM", "signrec ScratchLSTM", "naive per-step cell"):
            times[kind] = time_it(Stack(kind, 1662).to(args.device), x, args.repeat)
        for kind, t in times.items():
            rows.append([frames, kind, f"{t * 1e3:.1f}", f"{t / times['torch.nn.LSTM']:.2f}"])
    dev = torch.cuda.get_device_name() if args.device.startswith("cuda") else machine()
    print(f"device: {dev}; batch {args.batch}, 1662 features, LSTM {UNITS}, forward+backward, median of {args.repeat}")
    print(markdown_table(["frames", "implementation", "ms", "vs torch.nn.LSTM"], rows))


if __name__ == "__main__":
    main()
