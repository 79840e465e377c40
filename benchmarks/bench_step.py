"""What one training step of the best recipe costs on WLASL300's hands-only keypoints, and its batches.

    python benchmarks/bench_step.py [--compare precision|dropout] [--batches 8] [--rounds 5] [--threads 1 2]
                                    [--batches-only]

Two figures, on real WLASL300 training clips (the official train split, batches of the recipe's 32):

- making a batch: reading, augmenting and preprocessing its clips (what the data worker does), ms a clip;
- a training step (forward, backward, AdamW) of the best model (300 signs), two ways in turns (each first in
  every other round), `--rounds` rounds of the same `--batches` batches each, the median round a step; at each
  thread count. `--compare precision` (the default): float32 against bfloat16 mixed precision (the forward pass
  under `torch.autocast`, as `TrainConfig.precision="bf16"` trains; the loss in float32); `--compare dropout`:
  signrec's dropout against PyTorch's own (`nn.Dropout`, and `scaled_dot_product_attention`'s `dropout_p`), in
  float32.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import torch
from common import DATA, machine, markdown_table, require_data, shared_store
from torch import nn

from signrec.batching import collate
from signrec.models import build_model, make_config
from signrec.models import convformer as cf
from signrec.presets import best
from signrec.splits import make_split
from signrec.training.lightning import ClipDataset


def torch_attention(self: cf.SelfAttention, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """signrec's SelfAttention before its own dropout: `scaled_dot_product_attention` with `dropout_p`."""
    batch, steps, dim = x.shape
    q, k, v = nn.functional.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
    split = lambda t: t.reshape(batch, steps, self.heads, dim // self.heads).transpose(1, 2)
    y = nn.functional.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=mask[:, None, None, :],
                                                   dropout_p=self.dropout if self.training else 0.0)  # fmt: skip
    return self.out_proj(y.transpose(1, 2).reshape(batch, steps, dim))


def with_torch_dropout(model: nn.Module) -> nn.Module:
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, cf.Dropout):
                setattr(module, name, nn.Dropout(child.p))
        if isinstance(module, cf.SelfAttention):
            module.forward = types.MethodType(torch_attention, module)
    return model


def step_seconds(model: nn.Module, optimiser: torch.optim.Optimizer, batches: list, smoothing: float,
                 bf16: bool = False) -> float:  # fmt: skip
    loss = nn.CrossEntropyLoss(label_smoothing=smoothing)
    start = time.perf_counter()
    for x, mask, y in batches:
        optimiser.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x, mask)
        loss(logits.float(), y).backward()
        optimiser.step()
    return (time.perf_counter() - start) / len(batches)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--compare", choices=["precision", "dropout"], default="precision")
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batches-only", action="store_true", help="only the time to make a batch (e.g. to compare "
                    "another checkout's data code: PYTHONPATH=OTHER/src)")
    ap.add_argument("--work", default="work/bench-step")
    args = ap.parse_args()
    require_data()
    store = shared_store(DATA / "keypoints" / "wlasl300-hands", Path(args.work), "wlasl300")
    recipe = best()
    split = make_split(store, "official")
    glosses = sorted({c.gloss for c in store.subset(split.train)})
    clips = store.subset(split.train)[: args.batches * recipe.config.batch_size]
    targets = [glosses.index(c.gloss) for c in clips]
    preprocess = recipe.preprocess.for_parts(store.parts)
    data = ClipDataset(store, clips, targets, preprocess, recipe.augment)
    torch.set_num_threads(1)
    made, start = [], time.perf_counter()
    for i in range(0, len(clips), recipe.config.batch_size):
        made.append(collate()([data[j] for j in range(i, min(i + recipe.config.batch_size, len(clips)))]))
    per_clip = (time.perf_counter() - start) / len(clips)
    print(f"making batches: {per_clip * 1000:.2f} ms a clip ({len(clips)} clips)", file=sys.stderr, flush=True)
    if args.batches_only:
        return

    def model(torch_dropout: bool) -> tuple[nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        net = build_model(recipe.model, make_config(recipe.model, num_classes=len(glosses),
                                                    input_size=preprocess.num_features, **recipe.model_options))  # fmt: skip
        net = (with_torch_dropout(net) if torch_dropout else net).train()
        return net, torch.optim.AdamW(net.parameters(), recipe.config.lr, weight_decay=recipe.config.weight_decay)

    if args.compare == "dropout":
        ways = {"PyTorch's dropout": (True, False), "signrec's dropout": (False, False)}
        column = "dropout"
    else:
        ways = {"float32": (False, False), "bfloat16 mixed": (False, True)}
        column = "precision"
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        runs = {name: (*model(torch_dropout), bf16) for name, (torch_dropout, bf16) in ways.items()}
        times: dict[str, list[float]] = {k: [] for k in runs}
        smoothing = recipe.config.label_smoothing
        for name, (net, opt, bf16) in runs.items():  # warm-up
            step_seconds(net, opt, made[:2], smoothing, bf16)
        for i in range(args.rounds):
            for name in list(runs)[:: 1 if i % 2 == 0 else -1]:  # each goes first in every other round
                times[name].append(step_seconds(*runs[name][:2], made, smoothing, runs[name][2]))
        base = statistics.median(times[next(iter(ways))])
        for name, t in times.items():
            rows.append([threads, name, f"{statistics.median(t) * 1000:.0f}", f"{base / statistics.median(t):.2f}"])
            print(rows[-1], file=sys.stderr, flush=True)
    print(f"machine: {machine()}; {len(glosses)} signs, {len(made)} batches of {recipe.config.batch_size}, "
          f"{args.rounds} rounds in turns, medians")
    print(f"making a batch (read, augment, preprocess; one thread): {per_clip * 1000:.2f} ms a clip")
    print(markdown_table(["threads", column, "ms a training step", "speed-up"], rows))


if __name__ == "__main__":
    main()
