"""Training the Keras baseline: `model.fit` on batches read from the store, with early stopping.

Every training option of the run card is applied here as the PyTorch path applies it: Adam or AdamW with its
weight decay, label smoothing, the warm-up + cosine schedule (Keras's `CosineDecay` with warm-up, stepped per
batch), gradient clipping (`clipnorm`) and augmentation (a `keras.utils.PyDataset` that reads, augments and
preprocesses each batch anew every epoch) and the moving average of the weights (validated and saved in place of
the trained weights). Early stopping counts from the history, so a resumed run keeps its patience and its best
epoch (whose weights are in keras/). SIGINT/SIGTERM and the time cap stop after the current batch; the cut-short
epoch is not kept, and `last.keras` (the last whole epoch) lets the same command resume.
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
KERAS_STATE = "keras"  # the best epoch's weights: keras/best-<epoch>.npz


class BestWeights:
    """The weights of the best epoch, one file per epoch (written whole, then renamed), older ones removed only once
    the resume point has moved past them, so that a kill at any moment leaves the best epoch of the history that
    the resume keeps."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, epoch: int) -> Path:
        return self.folder / f"best-{epoch}.npz"

    def save(self, epoch: int, weights: list[np.ndarray]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path(epoch).with_suffix(".partial")
        with open(tmp, "wb") as f:
            np.savez(f, *weights)
        os.replace(tmp, self.path(epoch))

    def keep_only(self, epoch: int) -> None:
        for p in self.folder.glob("best-*.npz"):
            if p != self.path(epoch):
                p.unlink()

    def load(self, epoch: int) -> list[np.ndarray]:
        with np.load(self.path(epoch), allow_pickle=False) as z:
            return [z[f"arr_{i}"] for i in range(len(z.files))]


def validated_weights(model: Any, ema: float) -> list[np.ndarray]:
    """The weights validation saw: with a moving average (`SwapEMAWeights` swaps it in for validation) the average,
    which the optimiser holds beside the trained weights."""
    keras = import_keras()
    if not ema:
        return model.get_weights()
    opt = model.optimizer
    average = {id(v): a for v, a in zip(opt._trainable_variables, opt._model_variables_moving_average, strict=True)}
    return [keras.ops.convert_to_numpy(average.get(id(v), v)) for v in model.weights]


def check_config(config: TrainConfig) -> None:
    """What the Keras baseline cannot do, refused before any work starts."""
    if config.schedule == "plateau":
        raise ValueError("the plateau schedule is for --framework torch; the Keras baseline offers none or cosine")
    if config.mixup:
        raise ValueError("mixup is for --framework torch; the Keras baseline trains on each clip as it is")
    if config.precision == "bf16":  # "auto" is float32 here
        raise ValueError("bf16 precision is for --framework torch; the Keras baseline trains in float32")


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> Any:
    """The Keras optimiser (with its schedule and clipping) that `config` describes."""
    keras = import_keras()
    check_config(config)
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
    steps = len(train_data)
    done = int(np.asarray(model.optimizer.iterations)) // steps if resume else 0  # whole epochs in the resume point
    history = History(out / "history.csv", c.max_epochs, c.patience, c.progress, desc="train keras",
                      max_minutes=c.max_minutes, resume=resume, epochs_done=done)  # fmt: skip
    best_weights = BestWeights(out / KERAS_STATE)
    if history.rows and not best_weights.path(history.best_epoch).exists():
        raise FileNotFoundError(f"{best_weights.path(history.best_epoch)}: the weights of the best epoch "
                                f"({history.best_epoch}) of the run in {out} are missing (an older signrec's run "
                                "folder); remove the folder or train into another --out")  # fmt: skip
    start = time.perf_counter()
    received: list[int] = []
    patience_spent = lambda: bool(history.rows) and len(history.rows) - history.best_epoch >= c.patience

    class Keep(keras.callbacks.Callback):
        """History, best weights, resume point and early stopping, for whole epochs only: a part-epoch (a signal
        stops training after the current batch, and Keras validates what it has) is trained again on resume."""

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.batches = 0
            self.lr = float(np.asarray(self.model.optimizer.learning_rate))  # the rate the epoch starts with

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self.batches += 1
            if received:
                self.model.stop_training = True

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            if self.batches < steps:
                return
            logs, e = logs or {}, epoch + 1
            history.epoch(e, train_loss=logs.get("loss"), train_acc=logs.get("categorical_accuracy"),
                          val_loss=logs.get("val_loss"), val_acc=logs.get("val_categorical_accuracy"),
                          lr=self.lr)  # fmt: skip
            if history.best_epoch == e:
                best_weights.save(e, validated_weights(self.model, c.ema))
            tmp = out / KERAS_STATE / "last.partial.keras"  # in a folder that --force removes
            tmp.parent.mkdir(parents=True, exist_ok=True)
            self.model.save(tmp)
            os.replace(tmp, last)
            best_weights.keep_only(history.best_epoch)  # once the resume point is past the older ones
            if patience_spent() or received or (c.max_minutes and time.perf_counter() - start > c.max_minutes * 60):
                self.model.stop_training = True  # (a signal during validation: not another epoch's first batch)

    def handle(signum: int, frame: Any) -> None:
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        received.append(signum)

    # With a moving average, validation (and so the best model) is of the averaged weights
    callbacks = [keras.callbacks.SwapEMAWeights(), Keep()] if c.ema else [Keep()]
    old = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if len(history.rows) < c.max_epochs and not patience_spent():  # a resumed run that had stopped trains no more
            model.fit(train_data, validation_data=val_data, epochs=c.max_epochs, initial_epoch=len(history.rows),
                      verbose=0, callbacks=callbacks)  # fmt: skip
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        history.close()
    if not history.rows:
        raise Interrupted(received[0] if received else signal.SIGINT, "training stopped before the first epoch ended")
    model.set_weights(best_weights.load(history.best_epoch))
    if received:
        stopped = signal.Signals(received[0]).name
    elif patience_spent():
        stopped = f"early stopping (no better val loss for {c.patience} epochs)"
    elif len(history.rows) < c.max_epochs:
        stopped = f"time cap ({c.max_minutes:g} min)"
    else:
        stopped = f"max epochs ({c.max_epochs})"
    summary = {"epochs": len(history.rows), "best_epoch": history.best_epoch, "stopped": stopped,
               "seconds_per_epoch": history.seconds_per_epoch(), "device": f"keras/{keras.backend.backend()}",
               "signal": received[0] if received else None}  # fmt: skip
    return model, history, summary
