"""Training the Keras baseline: `model.fit` with Adam, categorical cross-entropy and early stopping."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..models.keras_lstm import build_keras_model, import_keras, pad
from ..models.lstm import LSTMConfig
from .config import TrainConfig
from .history import History


def fit(
    config: LSTMConfig,
    train: tuple[list[np.ndarray], np.ndarray],
    val: tuple[list[np.ndarray], np.ndarray],
    train_config: TrainConfig,
    out: str | os.PathLike,
    max_frames: int,
    padding: str = "post",
) -> tuple[Any, History, dict]:
    keras = import_keras()
    keras.utils.set_random_seed(train_config.seed)
    model = build_keras_model(config, max_frames)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=train_config.lr),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=train_config.label_smoothing),
        metrics=["categorical_accuracy"],
    )
    x_train, x_val = pad(train[0], max_frames, padding), pad(val[0], max_frames, padding)
    y_train = keras.utils.to_categorical(train[1], config.num_classes)
    y_val = keras.utils.to_categorical(val[1], config.num_classes)
    history = History(Path(out) / "history.csv", train_config.max_epochs, train_config.progress, desc="train keras")

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            logs = logs or {}
            history.epoch(epoch + 1, train_loss=logs["loss"], train_acc=logs["categorical_accuracy"],
                          val_loss=logs["val_loss"], val_acc=logs["val_categorical_accuracy"])  # fmt: skip

    stop = keras.callbacks.EarlyStopping(monitor="val_loss", mode="min", patience=train_config.patience,
                                         restore_best_weights=True)  # fmt: skip
    try:
        model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=train_config.max_epochs,
                  batch_size=train_config.batch_size, shuffle=True, verbose=0, callbacks=[Record(), stop])  # fmt: skip
    finally:
        history.close()
    best_epoch = int(np.argmin([r["val_loss"] for r in history.rows])) + 1 if history.rows else 0
    summary = {"epochs": len(history.rows), "best_epoch": best_epoch,
               "seconds_per_epoch": history.seconds_per_epoch, "device": f"keras/{keras.backend.backend()}"}  # fmt: skip
    return model, history, summary
