"""Training PyTorch models with PyTorch Lightning. The network is a plain nn.Module; this only wraps training.

Clips are read from the store on demand (`ClipDataset`), augmented and preprocessed anew each epoch, and
batched by `signrec.batching`; nothing holds the data set in memory. SIGINT (Ctrl-C) and SIGTERM (what a
cluster scheduler sends on pre-emption) stop training at the next batch; the best model so far is kept and
`last.ckpt` lets the same command resume. A time cap (`max_minutes`) stops training the same graceful way.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..batching import collate
from ..store import Clip, KeypointStore
from . import threads as thread_choice
from .config import TrainConfig
from .history import History
from .stop import Interrupted

LAST_CKPT = "last.ckpt"


class ClipDataset(torch.utils.data.Dataset):
    """`(model input, label)` for clips of a store: read on demand, then `augment` (training only) and
    `preprocess`. A random generator seeded from `seed` (and the worker) drives the augmentation."""

    def __init__(self, store: KeypointStore, clips: list[Clip], targets: np.ndarray,
                 preprocess: Callable[[np.ndarray], np.ndarray],
                 augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None, seed: int = 0):  # fmt: skip
        self.store, self.clips, self.targets = store, clips, np.asarray(targets, dtype=np.int64)
        self.preprocess, self.augment, self.seed = preprocess, augment, seed
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        raw = self.store.read(self.clips[i])
        if self.augment is not None:
            raw = self.augment(raw, self.rng)
        return self.preprocess(raw), int(self.targets[i])


def _worker_init(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    info.dataset.rng = np.random.default_rng(torch.initial_seed() % 2**32 + worker_id)


class LitClassifier(L.LightningModule):
    """Cross-entropy, accuracy and the optimiser around any classifier `model(x, mask) -> logits`."""

    def __init__(self, model: nn.Module, config: TrainConfig):
        super().__init__()
        self.model = model
        self.config = config
        self.loss = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(x, mask)

    def model_step(self, batch: tuple, stage: str) -> torch.Tensor:
        x, mask, y = batch
        logits = self.model(x, mask)
        loss = self.loss(logits, y)
        acc = (logits.argmax(-1) == y).float().mean()
        n = len(y)
        # epoch means weighted by batch size, averaged over processes when training on several
        self.log(f"{stage}_loss", loss, batch_size=n, on_step=False, on_epoch=True, sync_dist=True)
        self.log(f"{stage}_acc", acc, batch_size=n, on_step=False, on_epoch=True, sync_dist=True)
        return loss

    def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        return self.model_step(batch, "train")

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        self.model_step(batch, "val")

    def configure_optimizers(self) -> Any:
        c = self.config
        make = torch.optim.AdamW if c.optimizer == "adamw" else torch.optim.Adam
        opt = make(self.model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        if c.schedule == "none":
            return opt
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(c))}


def lr_factor(c: TrainConfig) -> Callable[[int], float]:
    """Linear warm-up over `warmup_epochs`, then cosine decay to 1% at `max_epochs`."""
    warm, total = max(1, c.warmup_epochs), max(c.max_epochs, c.warmup_epochs + 1)

    def factor(epoch: int) -> float:
        if epoch < warm:
            return (epoch + 1) / warm
        t = min(1.0, (epoch - warm) / max(1, total - warm))
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))

    return factor


class _Record(L.Callback):
    """One history row per epoch, once both the training and the validation means are known."""

    def __init__(self, history: History):
        self.history = history

    def on_train_epoch_end(self, trainer: L.Trainer, module: LitClassifier) -> None:
        if not trainer.is_global_zero:
            return
        m = trainer.callback_metrics
        value = lambda k: float(m[k]) if k in m else None
        lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
        self.history.epoch(trainer.current_epoch + 1, train_loss=value("train_loss"), train_acc=value("train_acc"),
                           val_loss=value("val_loss"), val_acc=value("val_acc"), lr=lr)  # fmt: skip


class _GracefulStop(L.Callback):
    """SIGINT and SIGTERM ask the trainer to stop after the current batch (a second SIGINT stops at once)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handler(self, trainer: L.Trainer) -> Callable:
        def handle(signum: int, frame: Any) -> None:
            if self.signum == signal.SIGINT and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.signum = signum
            trainer.should_stop = True

        return handle

    def on_train_start(self, trainer: L.Trainer, module: LitClassifier) -> None:
        # Lightning has registered its own SIGTERM handler by now (it would exit with status 0 and no model);
        # ours replaces it for the duration of training.
        for s in (signal.SIGINT, signal.SIGTERM):
            self._old[s] = signal.signal(s, self._handler(trainer))

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old.clear()

    def on_train_end(self, trainer: L.Trainer, module: LitClassifier) -> None:
        self.restore()

    def on_exception(self, trainer: L.Trainer, module: LitClassifier, exception: BaseException) -> None:
        self.restore()


def loaders(store: KeypointStore, train: tuple[list[Clip], np.ndarray], val: tuple[list[Clip], np.ndarray],
            preprocess: Callable, augment: Callable | None, config: TrainConfig, padding: str,
            fixed_frames: int | None, workers: int = 0) -> tuple[DataLoader, DataLoader]:  # fmt: skip
    """Training (shuffled, augmented) and validation loaders over the store."""
    batches = collate(padding, fixed_frames)
    # Workers are spawned, not forked: a fork of a process that runs JAX's or MediaPipe's threads can deadlock.
    extra = ({"num_workers": workers, "worker_init_fn": _worker_init, "persistent_workers": True,
              "multiprocessing_context": "spawn"} if workers else {})  # fmt: skip
    train_dl = DataLoader(ClipDataset(store, *train, preprocess, augment, config.seed), batch_size=config.batch_size,
                          shuffle=True, collate_fn=batches, generator=torch.Generator().manual_seed(config.seed), **extra)  # fmt: skip
    val_dl = DataLoader(ClipDataset(store, *val, preprocess), batch_size=config.batch_size, shuffle=False,
                        collate_fn=batches, **extra)  # fmt: skip
    return train_dl, val_dl


def fit(
    model: nn.Module,
    store: KeypointStore,
    train: tuple[list[Clip], np.ndarray],
    val: tuple[list[Clip], np.ndarray],
    config: TrainConfig,
    out: str | os.PathLike,
    preprocess: Callable[[np.ndarray], np.ndarray],
    augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    padding: str = "post",
    fixed_frames: int | None = None,
    resume: bool = False,
) -> tuple[nn.Module, History, dict]:
    """Train `model` on the store's clips; returns the best model (lowest validation loss), its history and a
    summary (epochs, best epoch, why it stopped, threads). Raises `Interrupted` after saving what a signal
    stopped (the caller writes the run)."""
    out = Path(out)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no banners; our lines say enough
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*(LeafSpec|does not have many workers|sync_dist|Checkpoint directory).*")
    L.seed_everything(config.seed, workers=True, verbose=False)
    loss = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    train_dl, val_dl = loaders(store, train, val, preprocess, augment, config, padding, fixed_frames)
    probe_batch = next(iter(train_dl))
    choice = thread_choice.choose(model, probe_batch, loss, lambda: next(iter(train_dl)), config.threads)
    if choice.workers:
        train_dl, val_dl = loaders(store, train, val, preprocess, augment, config, padding, fixed_frames, choice.workers)
    module = LitClassifier(model, config)
    ckpt_dir = out / "lightning"
    last = ckpt_dir / LAST_CKPT
    resume = resume and last.exists()
    history = History(out / "history.csv", config.max_epochs, config.patience, config.progress,
                      desc="train", max_minutes=config.max_minutes, resume=resume)  # fmt: skip
    best_ckpt = L.pytorch.callbacks.ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val_loss", mode="min",
                                                    save_top_k=1, save_last=True, enable_version_counter=False)  # fmt: skip
    stop = L.pytorch.callbacks.EarlyStopping(monitor="val_loss", mode="min", patience=config.patience)
    graceful = _GracefulStop()
    averaging = [L.pytorch.callbacks.EMAWeightAveraging(decay=config.ema)] if config.ema else []
    loggers: list = []
    try:
        loggers.append(L.pytorch.loggers.TensorBoardLogger(out, name="tensorboard", version=""))
    except ModuleNotFoundError:  # pragma: no cover - tensorboard is a dependency; keep training without it
        pass
    trainer = L.Trainer(
        max_epochs=config.max_epochs, accelerator="auto", devices=config.devices, strategy=config.strategy,
        num_nodes=config.num_nodes, logger=loggers or False,
        callbacks=[*averaging, best_ckpt, stop, graceful, _Record(history)], enable_progress_bar=False,
        enable_model_summary=False, log_every_n_steps=1, deterministic=False, num_sanity_val_steps=0,
        gradient_clip_val=config.grad_clip or None,
        max_time={"minutes": config.max_minutes} if config.max_minutes else None,
    )  # fmt: skip
    try:
        trainer.fit(module, train_dl, val_dl, ckpt_path=str(last) if resume else None)
    finally:
        graceful.restore()
        history.close()
    if not best_ckpt.best_model_path:
        raise Interrupted(graceful.signum or signal.SIGINT, "training stopped before the first epoch ended; nothing to keep")
    best = torch.load(best_ckpt.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in best.items()})
    model.cpu().eval()
    if graceful.signum is not None:
        stopped = signal.Signals(graceful.signum).name
    elif config.max_minutes and trainer.current_epoch < config.max_epochs and not stop.stopped_epoch:
        stopped = f"time cap ({config.max_minutes:g} min)"
    elif stop.stopped_epoch:
        stopped = f"early stopping (no better val loss for {config.patience} epochs)"
    else:
        stopped = f"max epochs ({config.max_epochs})"
    summary = {"epochs": len(history.rows), "best_epoch": history.best_epoch, "stopped": stopped,
               "seconds_per_epoch": history.seconds_per_epoch(), "device": str(trainer.strategy.root_device),
               "threads": choice.to_dict(), "signal": graceful.signum}  # fmt: skip
    return model, history, summary
