"""Training the Keras baseline: `model.fit` on batches read from the store, with early stopping.

Every training option of the run card is applied here as the PyTorch path applies it: Adam or AdamW with its
weight decay, label smoothing, the warm-up + cosine schedule (Keras's `CosineDecay` with warm-up, stepped per
batch), gradient clipping (`clipnorm`) and augmentation (a `keras.utils.PyDataset` that reads, augments and
preprocesses each batch anew every epoch). SIGINT/SIGTERM and the time cap stop after the current batch, keeping
the best weights; `last.keras` lets the same command resume.
"""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..batching import pad
from ..models.keras_lstm import build_keras_model, import_keras
from ..models.lstm import LSTMConfig
from ..store import Clip, KeypointStore
from .config import TrainConfig
from .history import History
from .stop import Interrupted

LAST_KERAS = "last.keras"


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> Any:
    """The Keras optimiser (with its schedule and clipping) that `config` describes."""
    keras = import_keras()
    lr: Any = config.lr
    if config.schedule == "cosine":
        warm = max(1, config.warmup_epochs) * steps_per_epoch
        total = max(config.max_epochs, config.warmup_epochs + 1) * steps_per_epoch
        lr = keras.optimizers.schedules.CosineDecay(initial_learning_rate=config.lr / max(1, config.warmup_epochs),
                                                    decay_steps=total - warm, alpha=0.01, warmup_target=config.lr,
                                                    warmup_steps=warm)  # fmt: skip
    clip = {"clipnorm": config.grad_clip} if config.grad_clip else {}
    if config.ema:  # Keras keeps the moving average in the optimiser and uses it when training ends
        clip.update(use_ema=True, ema_momentum=config.ema)
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=config.weight_decay, **clip)
    if config.weight_decay:
        raise ValueError("weight decay with Adam is not offered for Keras (it would be L2, not decoupled); "
                         "use --optimizer adamw")  # fmt: skip
    return keras.optimizers.Adam(learning_rate=lr, **clip)


def batches(store: KeypointStore, clips: list[Clip], targets: np.ndarray, num_classes: int,
            preprocess: Callable, max_frames: int, padding: str, batch_size: int, shuffle: bool,
            augment: Callable | None = None, seed: int = 0) -> Any:  # fmt: skip
    """A `keras.utils.PyDataset` of padded one-hot batches, read (and augmented) anew each epoch."""
    keras = import_keras()

    class ClipBatches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__(workers=1, use_multiprocessing=False)
            self.rng = np.random.default_rng(seed)
            self.order = np.arange(len(clips))
            if shuffle:
                self.rng.shuffle(self.order)

        def __len__(self) -> int:
            return math.ceil(len(clips) / batch_size)

        def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
            idx = self.order[i * batch_size : (i + 1) * batch_size]
            xs = []
            for j in idx:
                raw = store.read(clips[j])
                if augment is not None:
                    raw = augment(raw, self.rng)
                xs.append(preprocess(raw))
            x, _ = pad(xs, padding, max_frames)
            return x, np.eye(num_classes, dtype=np.float32)[targets[idx]]

        def on_epoch_end(self) -> None:
            if shuffle:
                self.rng.shuffle(self.order)

    return ClipBatches()


def fit(
    config: LSTMConfig,
    store: KeypointStore,
    train: tuple[list[Clip], np.ndarray],
    val: tuple[list[Clip], np.ndarray],
    train_config: TrainConfig,
    out: str | os.PathLike,
    preprocess: Callable,
    max_frames: int,
    padding: str = "post",
    augment: Callable | None = None,
    resume: bool = False,
) -> tuple[Any, History, dict]:
    keras = import_keras()
    keras.utils.set_random_seed(train_config.seed)
    out = Path(out)
    c = train_config
    train_data = batches(store, *train, config.num_classes, preprocess, max_frames, padding, c.batch_size, True,
                         augment, c.seed)  # fmt: skip
    val_data = batches(store, *val, config.num_classes, preprocess, max_frames, padding, c.batch_size, False)
    last = out / LAST_KERAS
    resume = resume and last.exists()
    if resume:
        model = keras.saving.load_model(last, safe_mode=True)
    else:
        model = build_keras_model(config, max_frames)
        model.compile(optimizer=make_optimizer(c, len(train_data)),
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=c.label_smoothing),
                      metrics=["categorical_accuracy"])  # fmt: skip
    history = History(out / "history.csv", c.max_epochs, c.patience, c.progress, desc="train keras",
                      max_minutes=c.max_minutes, resume=resume)  # fmt: skip
    start = time.perf_counter()
    received: list[int] = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            lr = self.model.optimizer.learning_rate
            history.epoch(epoch + 1, train_loss=logs.get("loss"), train_acc=logs.get("categorical_accuracy"),
                          val_loss=logs.get("val_loss"), val_acc=logs.get("val_categorical_accuracy"),
                          lr=float(np.asarray(lr)))  # fmt: skip
            self.model.save(last)
            if c.max_minutes and time.perf_counter() - start > c.max_minutes * 60:
                self.model.stop_training = True

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            if received:
                self.model.stop_training = True

    stop = keras.callbacks.EarlyStopping(monitor="val_loss", mode="min", patience=c.patience, restore_best_weights=True)

    def handle(signum: int, frame: Any) -> None:
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        received.append(signum)

    old = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        model.fit(train_data, validation_data=val_data, epochs=c.max_epochs, initial_epoch=len(history.rows),
                  verbose=0, callbacks=[Record(), stop])  # fmt: skip
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        history.close()
    if not history.rows:
        raise Interrupted(received[0] if received else signal.SIGINT, "training stopped before the first epoch ended")
    if received:
        stopped = signal.Signals(received[0]).name
    elif stop.stopped_epoch:
        stopped = f"early stopping (no better val loss for {c.patience} epochs)"
    elif len(history.rows) < c.max_epochs:
        stopped = f"time cap ({c.max_minutes:g} min)"
    else:
        stopped = f"max epochs ({c.max_epochs})"
    summary = {"epochs": len(history.rows), "best_epoch": history.best_epoch, "stopped": stopped,
               "seconds_per_epoch": history.seconds_per_epoch(), "device": f"keras/{keras.backend.backend()}",
               "signal": received[0] if received else None}  # fmt: skip
    return model, history, summary
