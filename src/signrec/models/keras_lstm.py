"""The Keras baseline: the reference architecture from Keras's own LSTM layers.

Keras 3 runs without TensorFlow; the backend comes from KERAS_BACKEND (default here: jax, which MediaPipe
already installs). Keras is imported lazily so that the rest of signrec never pays for it.
"""

from __future__ import annotations

import os
from typing import Any

from .lstm import LSTMConfig

DEFAULT_BACKEND = "jax"


def import_keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", DEFAULT_BACKEND)
    try:
        import keras
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("the Keras baseline needs keras>=3: pip install keras") from e
    return keras


def build_keras_model(config: LSTMConfig, max_frames: int) -> Any:
    """`keras.Sequential`: LSTM 64 -> 128 -> 64 (last state) -> Dense 64 -> 32 -> softmax, Adam-ready."""
    keras = import_keras()
    layers = [keras.Input((max_frames, config.input_size))]
    units = config.lstm_units
    for i, n in enumerate(units):
        layers.append(keras.layers.LSTM(n, return_sequences=i < len(units) - 1, activation=config.activation))
    for n in config.dense_units:
        layers.append(keras.layers.Dense(n, activation="relu"))
    layers.append(keras.layers.Dense(config.num_classes, activation="softmax"))
    return keras.Sequential(layers, name="keras_lstm_baseline")


def pad(sequences: list, max_frames: int, padding: str = "post") -> Any:
    """`keras.utils.pad_sequences` to `(n, max_frames, features)` float32."""
    keras = import_keras()
    return keras.utils.pad_sequences(
        sequences, maxlen=max_frames, dtype="float32", padding=padding, truncating="post", value=0.0
    )
