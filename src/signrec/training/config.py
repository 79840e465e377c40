"""The training configuration shared by both frameworks."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class TrainConfig:
    """Adam + cross-entropy, early stopping on the validation split only."""

    max_epochs: int = 2000
    patience: int = 100  # epochs without a better validation loss before stopping
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    seed: int = 0
    progress: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


HISTORY_FIELDS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"]
