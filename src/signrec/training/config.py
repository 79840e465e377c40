"""The training configuration shared by both frameworks."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class TrainConfig:
    """Adam + cross-entropy, early stopping on the validation split only (the reference's defaults); the
    optimiser, weight decay, label smoothing, learning-rate schedule and gradient clipping are switches."""

    max_epochs: int = 2000
    patience: int = 100  # epochs without a better validation loss before stopping
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    optimizer: str = "adam"  # "adam" or "adamw" (decoupled weight decay)
    schedule: str = "none"  # "none" or "cosine" (linear warm-up, then cosine decay over max_epochs)
    warmup_epochs: int = 5
    grad_clip: float = 0.0  # 0 = off
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be 'adam' or 'adamw', got {self.optimizer!r}")
        if self.schedule not in ("none", "cosine"):
            raise ValueError(f"schedule must be 'none' or 'cosine', got {self.schedule!r}")

    def to_dict(self) -> dict:
        return asdict(self)


HISTORY_FIELDS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"]
