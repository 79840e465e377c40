"""Training PyTorch models with PyTorch Lightning. The network is a plain nn.Module; this only wraps training."""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..models.lstm import pad_batch
from .config import TrainConfig
from .history import History


class SequenceData(torch.utils.data.Dataset):
    """Model inputs and labels; with `transform`, `xs` are raw sequences transformed anew at every access
    (augmentation then preprocessing), with a random generator seeded from `seed`."""

    def __init__(self, xs: list[np.ndarray], ys: np.ndarray, transform: Callable | None = None, seed: int = 0):
        self.transform, self.rng = transform, np.random.default_rng(seed)
        self.xs = xs if transform is not None else [torch.from_numpy(x) for x in xs]
        self.ys = torch.as_tensor(ys, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.xs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.transform is not None:
            return torch.from_numpy(self.transform(self.xs[i], self.rng)), self.ys[i]
        return self.xs[i], self.ys[i]


def make_collate(padding: str = "post", total: int | None = None):
    def collate(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        xs, ys = zip(*batch)
        x, lengths = pad_batch(list(xs), padding, total)
        return x, lengths, torch.stack(ys)

    return collate


class LitClassifier(L.LightningModule):
    """Adam + cross-entropy around any classifier `model(x, lengths) -> logits`."""

    def __init__(self, model: nn.Module, config: TrainConfig):
        super().__init__()
        self.model = model
        self.config = config
        self.loss = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self._sums: dict[str, list[float]] = {}

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(x, lengths)

    def model_step(self, batch: tuple, stage: str) -> torch.Tensor:
        x, lengths, y = batch
        logits = self.model(x, lengths)
        loss = self.loss(logits, y)
        correct = (logits.argmax(-1) == y).sum()
        n = len(y)
        s = self._sums.setdefault(stage, [0.0, 0.0, 0.0])
        s[0] += float(loss.detach()) * n
        s[1] += float(correct)
        s[2] += n
        self.log(f"{stage}_loss", loss, batch_size=n, on_step=False, on_epoch=True, prog_bar=False)
        return loss

    def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        return self.model_step(batch, "train")

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        self.model_step(batch, "val")

    def epoch_metrics(self, stage: str) -> dict[str, float]:
        loss, correct, n = self._sums.pop(stage, [0.0, 0.0, 0.0])
        return {f"{stage}_loss": loss / max(n, 1), f"{stage}_acc": correct / max(n, 1)}

    def configure_optimizers(self) -> Any:
        c = self.config
        make = torch.optim.AdamW if c.optimizer == "adamw" else torch.optim.Adam
        opt = make(self.model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        if c.schedule == "none":
            return opt
        warm, total = max(1, c.warmup_epochs), max(c.max_epochs, c.warmup_epochs + 1)

        def factor(epoch: int) -> float:  # linear warm-up, then cosine decay to 1% over max_epochs
            if epoch < warm:
                return (epoch + 1) / warm
            t = min(1.0, (epoch - warm) / max(1, total - warm))
            return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))

        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.LambdaLR(opt, factor)}


class _HistoryCallback(L.Callback):
    def __init__(self, history: History):
        self.history = history

    def on_validation_epoch_end(self, trainer: L.Trainer, module: LitClassifier) -> None:
        if trainer.sanity_checking:
            module._sums.pop("val", None)
            return
        metrics = {**module.epoch_metrics("train"), **module.epoch_metrics("val")}
        module.log("val_acc", metrics["val_acc"])
        self.history.epoch(trainer.current_epoch + 1, **metrics)


def fit(
    model: nn.Module,
    train: tuple[list[np.ndarray], np.ndarray],
    val: tuple[list[np.ndarray], np.ndarray],
    config: TrainConfig,
    out: str | os.PathLike,
    padding: str = "post",
    fixed_frames: int | None = None,
    transform: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
) -> tuple[nn.Module, History, dict]:
    """Train `model`; returns the best model (lowest validation loss), its history and a summary.

    With `transform`, the training sequences are raw and `transform(raw, rng)` (augmentation, then
    preprocessing) makes each epoch's inputs; validation inputs are always given ready."""
    out = Path(out)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no banners; our bar and summary say enough
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    L.seed_everything(config.seed, workers=True, verbose=False)
    collate = make_collate(padding, fixed_frames)
    train_dl = DataLoader(SequenceData(*train, transform=transform, seed=config.seed), batch_size=config.batch_size, shuffle=True, collate_fn=collate,
                          generator=torch.Generator().manual_seed(config.seed))  # fmt: skip
    val_dl = DataLoader(SequenceData(*val), batch_size=config.batch_size, shuffle=False, collate_fn=collate)
    module = LitClassifier(model, config)
    history = History(out / "history.csv", config.max_epochs, config.progress, desc="train torch")
    ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=out / "lightning", filename="best", monitor="val_loss",
                                               mode="min", save_top_k=1, save_weights_only=True)  # fmt: skip
    stop = L.pytorch.callbacks.EarlyStopping(monitor="val_loss", mode="min", patience=config.patience)
    loggers: list = [L.pytorch.loggers.CSVLogger(out, name="logs", version="")]
    try:
        loggers.append(L.pytorch.loggers.TensorBoardLogger(out, name="tensorboard", version=""))
    except ModuleNotFoundError:  # pragma: no cover - tensorboard is a dependency; keep training without it
        pass
    trainer = L.Trainer(
        max_epochs=config.max_epochs, accelerator="auto", devices=1, logger=loggers,
        callbacks=[ckpt, stop, _HistoryCallback(history)], enable_progress_bar=False,
        enable_model_summary=False, log_every_n_steps=1, deterministic=False, num_sanity_val_steps=0,
        gradient_clip_val=config.grad_clip or None,
    )  # fmt: skip
    try:
        trainer.fit(module, train_dl, val_dl)
    finally:
        history.close()
    best = torch.load(ckpt.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in best.items()})
    model.cpu().eval()
    best_epoch = int(np.argmin([r["val_loss"] for r in history.rows])) + 1 if history.rows else 0
    summary = {"epochs": len(history.rows), "best_epoch": best_epoch,
               "seconds_per_epoch": history.seconds_per_epoch, "device": str(trainer.strategy.root_device)}  # fmt: skip
    return model, history, summary
