"""The training configuration shared by both frameworks."""

from __future__ import annotations

from dataclasses import asdict, dataclass

SCHEDULES = ("none", "cosine", "plateau")
# Arithmetic of training (torch): "32" float32 throughout; "bf16" mixed precision (matrix products and convolutions
# in bfloat16 under autocast; weights, optimiser, losses and validation in float32); "auto" (`resolve_precision`).
PRECISIONS = ("32", "bf16", "auto")
# The models "auto" trains in bf16, where it was measured (BENCHMARKS.md, Training step and Hundreds of signs).
BF16_MODELS = ("convformer",)
# What does not change the result (how it is shown or scheduled on the machine), left out of fingerprints.
RUNTIME_FIELDS = ("progress", "threads", "max_minutes", "devices", "strategy", "num_nodes")  # (max_minutes counts
# under the plateau schedule, where it can start the decay: `result_settings`)


@dataclass
class TrainConfig:
    """Adam + cross-entropy, early stopping on the validation split only (the reference's defaults); the
    optimiser, weight decay, label smoothing, learning-rate schedule and gradient clipping are switches.

    `max_epochs` also sets the length of the cosine schedule; `max_minutes` stops training (gracefully, keeping
    the best model) when time is up, and never squeezes the cosine schedule. The `plateau` schedule lets
    validation decide the length: after the warm-up the rate stays constant until the validation loss has not
    improved for `plateau_wait` epochs, then decays (cosine, to 1%) over `plateau_decay` times the epochs trained
    so far (at least `plateau_wait`), and training ends with the decay; `max_epochs` is only a cap. With
    `max_minutes` it also starts the decay while validation still improves when the rest of the time would
    otherwise no longer hold it (measured on the epochs so far), so that training still ends with a decay
    (shortened when even one starting at once no longer fits); such a cap is then part of the run's settings.
    With `refit`, each refit is capped too, in proportion to the clips it trains on (training and validation
    against training), and compresses the validated run's epochs into what its cap holds when they no longer fit,
    so that it still ends with their decay.
    """

    max_epochs: int = 2000
    patience: int = 100  # epochs without a better validation loss before stopping
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    optimizer: str = "adam"  # "adam" or "adamw" (decoupled weight decay)
    schedule: str = "none"  # "none", "cosine" (linear warm-up, then cosine decay over max_epochs) or "plateau"
    plateau_wait: int = 10  # plateau: epochs without a better validation loss that start the decay
    plateau_decay: float = 0.5  # plateau: the decay's length as a fraction of the epochs before it
    warmup_epochs: int = 5
    grad_clip: float = 0.0  # 0 = off
    mixup: float = 0.0  # mixup (torch): each training batch mixed with itself reordered, by a weight drawn from
    # Beta(mixup, mixup), and the loss mixed alike (0 = off)
    precision: str = "32"  # PRECISIONS; evaluation, prediction and export always compute in float32
    ema: float = 0.0  # decay of an exponential moving average of the weights, per step (0 = off); validation,
    # early stopping and the saved model use the averaged weights
    seed: int = 0
    ensemble: int = 1  # models trained (seeds seed, seed + 1, ...) whose probabilities are averaged (torch)
    refit: bool = False  # each model also refitted on training + validation clips for the epochs validation chose
    # (another seed), the two averaged (torch); validation figures are then of the validated models alone
    refit_whole: bool = False  # a refit replays the validated run's whole schedule (its decay included), not only
    # up to the epoch it kept
    max_minutes: float | None = None  # stop gracefully after this long (the best model so far is kept)
    threads: int | None = None  # torch threads; None = measured at the start (see training.threads)
    devices: int = 1  # processes/devices for data-parallel training (torch)
    strategy: str = "auto"  # Lightning strategy: auto, ddp, ...
    num_nodes: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be 'adam' or 'adamw', got {self.optimizer!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.plateau_wait < 1 or self.plateau_decay <= 0:
            raise ValueError(f"plateau_wait must be at least 1 and plateau_decay positive, got {self.plateau_wait} "
                             f"and {self.plateau_decay}")  # fmt: skip
        for name in ("max_epochs", "patience", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.mixup >= 0:  # NaN too
            raise ValueError(f"mixup must be 0 (off) or positive, got {self.mixup}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if self.ensemble < 1:
            raise ValueError(f"ensemble must be at least 1, got {self.ensemble}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")

    def to_dict(self) -> dict:
        return asdict(self)

    def result_settings(self) -> dict:
        """The settings that change the trained model (for fingerprints; a single model's leave `ensemble` out,
        as runs made before it existed did)."""
        out = {k: v for k, v in asdict(self).items() if k not in RUNTIME_FIELDS}
        if self.ensemble == 1:
            del out["ensemble"]
        if not self.refit:  # as runs made before it existed
            del out["refit"]
        if not self.refit_whole:
            del out["refit_whole"]
        if not self.mixup:  # as runs made before it existed
            del out["mixup"]
        if self.precision == "32":  # as runs made before it existed
            del out["precision"]
        if self.schedule != "plateau":  # as runs made before it existed
            del out["plateau_wait"], out["plateau_decay"]
        elif self.max_minutes is not None:  # under the plateau schedule a cap can start the decay: it shapes the model
            out["max_minutes"] = self.max_minutes
        return out


# `signrec run` refits its best model by default (`TrainConfig.refit`) when the split trains on at most this many
# clips: there a few clips a sign are all it has, and twice the training is minutes (with mixup, two such pairs:
# SMALL_SET_ENSEMBLE, below); above it (WLASL300's 1,876 training clips took about 40 minutes without a refit on 2
# cores) two whole trainings would push the job past an hour, so there it refits only with the mixup it chose and
# the cap that comes with it (REFIT_LARGE_SET_MINUTES, below), or when asked with --refit.
SMALL_SET_MAX_CLIPS = 1000
# It trains it with mixup of MIXUP_ALPHA (`TrainConfig.mixup`) on a set with at most MIXUP_MAX_CLIPS_A_SIGN
# training clips a sign on average: on WLASL100 (7 a sign) mixup took validation from 73.9
# to 78.5 top-1 and a refitted pair from 71.5 to 80.0 on clips neither model saw (two seeds); trained on the
# webcam signers (about 130 a sign) and scored on GISLR's people it lost 2.4 points and its worst person fell from
# 70% to 50% (three seeds; BENCHMARKS.md, New people and cameras, Release 12). On WLASL300 (6 a sign, over 1,000
# clips) it took validation from 60.5 to 64.6 but trained 169 epochs instead of 93: a job of 63-66 minutes here,
# past the hour (Hundreds of signs, Release 13), so there it comes with a time cap (below).
MIXUP_ALPHA = 0.4
MIXUP_MAX_CLIPS_A_SIGN = 20
# On a larger set (over SMALL_SET_MAX_CLIPS) the mixup `signrec run` chooses comes with a cap on the best model's
# training time, unless the command set one: the plateau schedule then starts its decay in time to end within it.
# The WLASL300 job so: 65.0 top-1 on validation in 50.6 minutes (the decay after epoch 89 instead of 103; Release 14).
MIXUP_LARGE_SET_MINUTES = 50.0
# ... and with a refit too (its default there in one process), REFIT_LARGE_SET_MINUTES for the validated model, so
# that it and its refit (as many epochs on the training and validation clips: WLASL300's 2,319 against 1,876, and
# no validation; capped in proportion, 30.9 min there, its epochs compressed when they would not fit) end within
# the hour. On WLASL300 with validation taken from the training clips, scored on the
# official validation clips neither model saw, such a pair scored 66.8% top-1 / 88.5% top-5 against 61.2 / 86.2 for
# the validated model alone (one seed; BENCHMARKS.md, Hundreds of signs, Release 15).
REFIT_LARGE_SET_MINUTES = 25.0
# ... up to this many training clips, the range measured (WLASL300's 1,876). Above it (WLASL1000 and WLASL2000, about
# 10 clips a sign but 5-14 thousand clips) 50 minutes would be a few dozen epochs on a CPU, so such a set trains
# without mixup and without a cap, as before; `--mixup` and `--max-minutes` ask for them.
MIXUP_CAPPED_MAX_CLIPS = 3000
# On a set of at most SMALL_SET_MAX_CLIPS where it chose mixup and the refit (WLASL100: 741 training clips),
# `signrec run` trains SMALL_SET_ENSEMBLE such pairs, on seeds 0, 1, ..., all averaged: on WLASL100 with
# validation taken from the training clips, two pairs scored 83.2% top-1 / 94.9% top-5 on the official validation
# clips no model saw, against 80.6 / 94.3 for one (three seeds; BENCHMARKS.md, Hundreds of signs, Release 18).
# Each validated model is then capped at SMALL_SET_MINUTES and its refit in proportion (15.3 min on WLASL100), so
# that the four end within the hour on a day the machine is 2-3 times slower, as it has been (Release 12's one pair
# took 55.6 min); on a usual day it does not bind: WLASL100's validated models took 7.8 and 10.1 min, the job 37.0.
SMALL_SET_ENSEMBLE = 2
SMALL_SET_MINUTES = 12.5

HISTORY_FIELDS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]


def resolve_precision(requested: str, model: str, accelerator: bool) -> str:
    """The arithmetic a `model` trains in: "bf16" or "32". "auto" is bf16 for BF16_MODELS on a CPU that computes
    bfloat16 natively (AVX512-BF16 or AMX), where a training step of the best recipe took 0.76 of float32's time
    (BENCHMARKS.md, Training step); else 32: other models, beside a GPU (`accelerator`), and on CPUs that would
    emulate it (none of them measured). Resolved before a run's fingerprint, so that a run trained in one arithmetic
    is neither reused nor resumed in the other."""
    if requested != "auto":
        return requested
    return "bf16" if model in BF16_MODELS and not accelerator and cpu_computes_bf16() else "32"


def cpu_computes_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions: AVX512-BF16 or AMX (x86); elsewhere False (not measured)."""
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - a torch without these checks
        return False
