"""Exporting a PyTorch run to ONNX: `x (batch, time, features)` float32 and `mask (batch, time)` bool in,
`probabilities (batch, classes)` out, with the card in the file's metadata so that the `.onnx` file alone
predicts (`signrec predict model.onnx clip.mp4`, with onnxruntime and no PyTorch).

The time axis is dynamic: a clip of any length gets the probabilities the checkpoint gives. The from-scratch
LSTM's recurrence is written as ONNX's own LSTM operator (the same function: gate order i, f, g, o, one bias),
which runs over any number of steps; with relu inside the LSTM, which that operator's PyTorch export does not
offer, the graph is unrolled over a fixed length (`frames`), and longer inputs are refused with a clear error.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path

from .checkpoint import CheckpointError, load_torch, resolve, save_onnx_card

ONNX_OPSET = 17


def _with_onnx_lstms(model):
    """A copy of `model` whose ScratchLSTM layers are `nn.LSTM`s with the same weights (exported as ONNX LSTM)."""
    import torch
    from torch import nn

    from .models.lstm import ScratchLSTM

    class AsONNX(nn.Module):
        def __init__(self, layer: ScratchLSTM):
            super().__init__()
            self.lstm = nn.LSTM(layer.input_size, layer.hidden_size, batch_first=True)
            with torch.no_grad():
                self.lstm.weight_ih_l0.copy_(layer.weight_ih)
                self.lstm.weight_hh_l0.copy_(layer.weight_hh)
                self.lstm.bias_ih_l0.copy_(layer.bias)
                self.lstm.bias_hh_l0.zero_()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lstm(x)[0]

    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for attr, sub in list(module.named_children()):
            if isinstance(sub, ScratchLSTM):
                setattr(module, attr, AsONNX(sub))
    return model


def export_onnx(checkpoint: str | os.PathLike, path: str | os.PathLike, frames: int | None = None) -> Path:
    """Export a PyTorch run or `model.pt` to ONNX at `path` (written atomically).

    The graph's output is the model's own softmax; the card stored in the file carries the calibration
    (temperature, unknown threshold) that `load_predictor` applies on top, as it does for the checkpoint."""
    import torch

    src = resolve(checkpoint)
    if src.suffix != ".pt":
        raise CheckpointError(f"{src}: ONNX export is for PyTorch checkpoints (model.pt); Keras models stay .keras")
    model, card = load_torch(src)
    pre_frames = card.preprocess.get("max_frames") or card.preprocess.get("resample")
    base, base_config = card.base
    dynamic = not (base == "lstm" and base_config.get("activation") == "relu")
    dynamic = dynamic and base_config.get("read") != "final"
    if base == "lstm" and dynamic:
        model = _with_onnx_lstms(model)
    steps = frames or pre_frames or int(card.training.get("frames_max") or 0) or 64
    card.export = {"onnx_frames": None if dynamic else steps}

    class WithSoftmax(torch.nn.Module):
        def __init__(self, model: torch.nn.Module):
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.model(x, mask), dim=-1)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    features = int(card.model_config["input_size"])
    x = torch.zeros(2, steps, features)
    mask = torch.zeros(2, steps, dtype=torch.bool)
    mask[0, :] = True
    mask[1, : max(1, steps // 2)] = True
    axes = {"x": {0: "batch"}, "mask": {0: "batch"}, "probabilities": {0: "batch"}}
    if dynamic:
        axes["x"][1] = axes["mask"][1] = "time"
    tmp = path.with_name(path.name + ".partial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shapes: the parity test is the proof
        torch.onnx.export(WithSoftmax(model).eval(), (x, mask), str(tmp), input_names=["x", "mask"],
                          output_names=["probabilities"], dynamic_axes=axes, dynamo=False, opset_version=ONNX_OPSET)  # fmt: skip
    save_onnx_card(tmp, card)
    os.replace(tmp, path)
    return path
