"""Training PyTorch models with PyTorch Lightning. The network is a plain nn.Module; this only wraps training.

Training clips are read from the store on demand (`ClipDataset`), augmented and preprocessed anew each epoch, and
batched by `signrec.batching`; nothing holds the training set in memory (the validation clips' model inputs are
kept after the first epoch, up to KEEP_BYTES). SIGINT (Ctrl-C) and SIGTERM (what a
cluster scheduler sends on pre-emption) stop training at the next batch; the best model so far is kept and
`last.ckpt` lets the same command resume. A time cap (`max_minutes`) stops training the same graceful way.

On several devices (`devices`, `strategy="ddp"`, `num_nodes`) each process trains on its own share of the
training clips each epoch (a `DistributedSampler`: every clip once, plus at most one repeated clip per process
to even the shares out), and validates on its own share of the validation clips with nothing repeated; loss and
accuracy are metric objects whose sums and counts are added up over all processes, so the validation figures
(and early stopping and the best checkpoint) are those of the whole validation split, as on one process.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler
from torchmetrics import MeanMetric

from ..batching import collate, mix
from ..store import Clip, KeypointStore
from . import ranks
from . import threads as thread_choice
from .config import TrainConfig
from .history import History, epochs
from .stop import Interrupted

LAST_CKPT = "last.ckpt"
STAGES = ("train", "val")
# What Lightning's launcher puts in the environment of the process that starts the others (restored afterwards,
# so that a second training run in the same process launches its own processes again).
LAUNCH_VARS = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE", "OMP_NUM_THREADS")
CHILD_EXIT_SECONDS = 120.0


# Validation inputs kept in memory across epochs, at most (WLASL300's 443 validation clips: about 30 MB).
KEEP_BYTES = 1 << 30


class ClipDataset(torch.utils.data.Dataset):
    """`(model input, label)` for clips of a store: read on demand, then `augment` (training only) and
    `preprocess`. The augmentation of clip i the k-th time it is read is drawn from a generator seeded with
    (seed, i, k), so a run's data are the same whether batches are made here or in one worker process (which the
    thread measurement chooses from the machine's load). Several workers (beside a GPU) each count only the clips
    they read, so there the loader asks for `(i, epoch)` (`EpochDraws`) and k is the epoch.

    With `keep` (validation: no augmentation, the same clips every epoch) each clip's model input is kept in memory
    (a read-only copy of its own, never a view of the file) the first time it is made, up to KEEP_BYTES in all, and
    later epochs neither read nor preprocess it again."""

    def __init__(self, store: KeypointStore, clips: list[Clip], targets: np.ndarray,
                 preprocess: Callable[[np.ndarray], np.ndarray],
                 augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None, seed: int = 0,
                 keep: bool = False):  # fmt: skip
        if keep and augment is not None:
            raise ValueError("only clips without augmentation (the same every time) can be kept")
        self.store, self.clips, self.targets = store, clips, np.asarray(targets, dtype=np.int64)
        self.preprocess, self.augment, self.seed = preprocess, augment, seed
        self.draws = np.zeros(len(clips), dtype=np.int64)  # times each clip was read (here or in the one worker)
        self.keep, self.kept, self.kept_bytes = keep, {}, 0

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[np.ndarray, int]:
        i, epoch = key if isinstance(key, tuple) else (key, None)
        if self.keep:
            x = self.kept.get(i)
            if x is None:
                x = self.preprocess(self.store.read(self.clips[i]))
                if self.kept_bytes + x.nbytes <= KEEP_BYTES:  # a copy: a view would hold the file open
                    x = np.array(x)
                    x.setflags(write=False)
                    self.kept[i], self.kept_bytes = x, self.kept_bytes + x.nbytes
            return x, int(self.targets[i])
        raw = self.store.read(self.clips[i])
        if self.augment is not None:
            k = epoch if epoch is not None else int(self.draws[i])
            rng = np.random.default_rng((self.seed, i, k))
            self.draws[i] += 1
            raw = self.augment(raw, rng)
        return self.preprocess(raw), int(self.targets[i])


class LitClassifier(L.LightningModule):
    """Cross-entropy, accuracy and the optimiser around any classifier `model(x, mask) -> logits`."""

    def __init__(self, model: nn.Module, config: TrainConfig, plateau: _Plateau | None = None,
                 replay: _Replay | None = None):  # fmt: skip
        super().__init__()
        self.model = model
        self.config = config
        self.plateau = plateau
        self.replay = replay
        self.loss = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        # per-sample means whose sums and counts are added up over processes when training on several
        self.metrics = nn.ModuleDict({f"{s}_{m}": MeanMetric() for s in STAGES for m in ("loss", "acc")})

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(x, mask)

    def model_step(self, batch: tuple, stage: str) -> torch.Tensor:
        x, mask, y = batch
        logits = self.model(x, mask).float()  # (bfloat16 under mixed precision: the loss in float32)
        loss = self.loss(logits, y)
        self._record(stage, loss, logits, y)
        return loss

    def _record(self, stage: str, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        """A batch's loss and accuracy into the epoch's means (summed over processes)."""
        loss_mean, acc_mean = self.metrics[f"{stage}_loss"], self.metrics[f"{stage}_acc"]
        loss_mean.update(loss.detach(), weight=len(y))
        acc_mean.update((logits.argmax(-1) == y).float())
        self.log(f"{stage}_loss", loss_mean, on_step=False, on_epoch=True)
        self.log(f"{stage}_acc", acc_mean, on_step=False, on_epoch=True)

    def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        if not self.config.mixup:
            return self.model_step(batch, "train")
        x, mask, y = batch
        # drawn from (seed, step): the same on a resumed run; a weight of 1 is the batch itself
        rng = np.random.default_rng((self.config.seed, self.global_step))
        weight = float(rng.beta(self.config.mixup, self.config.mixup))
        partner = torch.from_numpy(rng.permutation(len(y))).to(x.device)
        x, mask = mix(x, mask, partner, weight)
        logits = self.model(x, mask).float()
        loss = weight * self.loss(logits, y) + (1 - weight) * self.loss(logits, y[partner])
        # training loss and accuracy are the mixed batches' (accuracy against each one's larger part)
        self._record("train", loss, logits, y if weight >= 0.5 else y[partner])
        return loss

    def validation_step(self, batch: tuple, batch_idx: int) -> None:
        # in float32 under mixed precision too: the validation loss that keeps the model and schedules its rate, and
        # the accuracy the run records, are those of the model as evaluation and prediction compute it
        with torch.autocast(batch[0].device.type, enabled=False):
            self.model_step(batch, "val")

    def configure_optimizers(self) -> Any:
        c = self.config
        make = torch.optim.AdamW if c.optimizer == "adamw" else torch.optim.Adam
        opt = make(self.model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        if c.schedule == "none":
            return opt
        if c.schedule == "plateau":
            if self.plateau is None:
                raise ValueError("the plateau schedule needs its _Plateau callback")
            factor = self.plateau.factor
        else:
            factor = lr_factor(c)
        if self.replay is not None:  # a refit: the plan's rates where the replay has got to
            factor = self.replay.warp(factor)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.LambdaLR(opt, factor)}


def lr_factor(c: TrainConfig) -> Callable[[int], float]:
    """Linear warm-up over `warmup_epochs`, then cosine decay to 1% at `max_epochs`."""
    warm, total = max(1, c.warmup_epochs), max(c.max_epochs, c.warmup_epochs + 1)

    def factor(epoch: int) -> float:
        if epoch < warm:
            return (epoch + 1) / warm
        t = min(1.0, (epoch - warm) / max(1, total - warm))
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))

    return factor


class _Plateau(L.Callback):
    """The `plateau` schedule (see `TrainConfig`): warm-up, a constant rate while the validation loss improves,
    then a cosine decay whose length follows from when validation stopped improving; training ends with it.
    Counts whole epochs only, and is saved in checkpoints, so a resumed run goes on where it was."""

    def __init__(self, config: TrainConfig):
        self.warm, self.wait, self.decay = max(1, config.warmup_epochs), config.plateau_wait, config.plateau_decay
        self.best, self.bad, self.best_epoch, self.done, self.plateau_after = math.inf, 0, 0, 0, 0
        self.decay_start: int | None = None  # the first epoch of the decay (0-based, as the scheduler counts)
        self.decay_epochs = 0
        self.timed = False  # whether the time cap started the decay (validation was still improving)
        self.minutes = config.max_minutes
        self._pace = _Pace()

    @property
    def finished(self) -> bool:
        return self.decay_start is not None and self.done >= self.decay_start + self.decay_epochs

    def factor(self, epoch: float) -> float:
        """The rate's factor for `epoch` (0-based; a compressed replay asks between epochs), what `LambdaLR` asks
        at the start of each epoch."""
        if epoch < self.warm:
            return (epoch + 1) / self.warm
        if self.decay_start is None or epoch < self.decay_start:  # (a refit replays a decay set in advance)
            return 1.0
        t = min(1.0, (epoch - self.decay_start + 1) / self.decay_epochs)  # the last epoch of the decay at 1%
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))

    def on_validation_end(self, trainer: L.Trainer, module: LitClassifier) -> None:
        if not _epoch_complete(trainer) or "val_loss" not in trainer.callback_metrics:
            return
        # the synced mean of all processes: every process of a distributed run takes the same decisions
        done = self.done = trainer.current_epoch + 1  # epochs finished
        loss = float(trainer.callback_metrics["val_loss"])
        if loss < self.best:
            self.best, self.bad, self.best_epoch = loss, 0, done
        else:
            self.bad += 1
        timed = self._timed_decay(trainer, done)
        if self.decay_start is None and done > self.warm and (self.bad >= self.wait or timed):
            self.decay_start, self.decay_epochs = done, timed or self._length(done)
            self.timed = bool(timed) and self.bad < self.wait
            self.plateau_after = self.best_epoch  # the last better epoch before the decay
            _rate_again(trainer, done)
        if self.finished:
            trainer.should_stop = True

    def _length(self, done: int) -> int:
        """The decay's epochs when it starts after `done` epochs."""
        return max(self.wait, round(self.decay * done))

    def _timed_decay(self, trainer: L.Trainer, done: int) -> int:
        """With a time cap: the decay's length if it must start now to end within the cap (the rest of the time
        holds the decay that would start after one more epoch no longer), else 0; a decay that no longer fits whole
        is shortened to what fits (`_Pace`). Rank 0 decides and the others follow, so every process of a
        distributed run starts alike."""
        if not self.minutes or self.decay_start is not None:  # the same on every process: nothing to agree on
            return 0
        fits = self._pace.epochs_that_fit(trainer)
        length = 0
        if fits is not None and done > self.warm and 1 + self._length(done + 1) > fits:
            length = max(1, min(self._length(done), fits))
        return int(trainer.strategy.broadcast(length, src=0))

    def epochs_left(self) -> tuple[int, str]:
        """Epochs still to run, for progress lines: the decay's rest, or the soonest the decay could end."""
        if self.decay_start is not None:
            n = max(0, self.decay_start + self.decay_epochs - self.done)
            return n, f"stops in {epochs(n)} (the rate's decay)"
        waiting = max(0, self.wait - self.bad)
        n = waiting + max(self.wait, round(self.decay * (self.done + waiting)))
        return n, f"stops in {epochs(n)} at the soonest, later while val improves"

    def on_train_start(self, trainer: L.Trainer, module: LitClassifier) -> None:
        if self.finished:  # resumed after the decay ended (killed before the run was written): nothing to train
            trainer.should_stop = True

    def state_dict(self) -> dict:
        return {"best": self.best, "bad": self.bad, "best_epoch": self.best_epoch, "done": self.done,
                "plateau_after": self.plateau_after, "decay_start": self.decay_start, "decay_epochs": self.decay_epochs,
                "timed": self.timed}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)


class _Pace:
    """How many more epochs the rest of a run's time cap holds, at the pace of its recent epochs."""

    def __init__(self) -> None:
        self._ends: list[float] = []  # when this process's recent epochs ended (not saved: a resumed run re-measures)

    def epochs_that_fit(self, trainer: L.Trainer) -> int | None:
        """Called once at the end of each epoch: the whole epochs the rest of the time cap holds, at the mean of
        the last 10 epochs (validation included) and 10% to spare; None without a cap or before two epochs."""
        self._ends = [*self._ends[-10:], time.perf_counter()]
        timer = next((c for c in trainer.callbacks if isinstance(c, L.pytorch.callbacks.Timer)), None)
        if timer is None or len(self._ends) < 2:
            return None
        per_epoch = 1.1 * (self._ends[-1] - self._ends[0]) / (len(self._ends) - 1)
        return int((timer.time_remaining("train") or 0.0) // per_epoch)


class _Replay(L.Callback):
    """A refit's replay of its validated run's `plan`: as many epochs, each with the rate the validated run had.

    Within a time cap: when the rest of the plan no longer fits in the rest of the time (`_Pace`), it is compressed
    into the epochs that fit, each then covering more than one of the plan's epochs (with the rate of the last of
    them), so that the refit still ends with the plan's last rates (its decay, the last epoch at the plan's last
    rate) rather than being cut at its constant rate by a machine that slowed down; when more fits again, it goes
    back towards the plan's pace. Where it has got to is saved in checkpoints, so a resumed refit goes on with it."""

    def __init__(self, epochs: int):
        self.epochs = epochs
        # from epoch `since` (0-based; plan position `at`) on, each epoch covers `pace` of the plan's
        self.since, self.at, self.pace, self.done = 0, 0.0, 1.0, 0
        self._pace = _Pace()

    def position(self, epoch: float) -> float:
        """Where in the plan (its epochs, 0-based, fractional once compressed) `epoch` starts."""
        return self.at + (epoch - self.since) * self.pace

    def warp(self, factor: Callable[[float], float]) -> Callable[[float], float]:
        """The plan's rate `factor` (by the plan's epochs) as a factor by the epochs this run trains: the rate of
        the last plan epoch that starts in each (the same epoch until the plan is compressed)."""
        return lambda epoch: factor(math.ceil(self.position(epoch + 1) - 1e-6) - 1)

    @property
    def compressed(self) -> bool:
        return self.pace > 1.0 + 1e-9

    @property
    def finished(self) -> bool:
        return self.epochs - self.position(self.done) < 1e-6

    def epochs_left(self) -> tuple[int, str]:
        n = max(0, math.ceil((self.epochs - self.position(self.done)) / self.pace - 1e-6))
        how = f"the validated run's {self.epochs}, compressed to fit the time cap" if self.compressed else (
            "the validated run's length")  # fmt: skip
        return n, f"stops in {epochs(n)} ({how})"

    def on_train_start(self, trainer: L.Trainer, module: LitClassifier) -> None:
        if self.finished:  # resumed after the plan ended (killed before the run was written)
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer: L.Trainer, module: LitClassifier) -> None:
        if not _epoch_complete(trainer):
            return
        self.done = done = trainer.current_epoch + 1
        if self.finished:
            trainer.should_stop = True
            return
        rest = self.epochs - self.position(done)
        fits = self._pace.epochs_that_fit(trainer)
        fits = int(trainer.strategy.broadcast(-1 if fits is None else fits, src=0))  # rank 0 decides
        if fits < 0:
            return
        # the epochs for the rest: as many as fit, never more than the plan's (a machine that sped up again after
        # a compression goes back towards the plan's pace)
        n = max(1, min(fits, math.floor(rest + 1e-6)))
        if n != math.ceil(rest / self.pace - 1e-6):
            self.since, self.at, self.pace = done, self.position(done), max(1.0, rest / n)
            _rate_again(trainer, done)

    def state_dict(self) -> dict:
        return {"since": self.since, "at": self.at, "pace": self.pace, "done": self.done}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, v)


def _rate_again(trainer: L.Trainer, epoch: int) -> None:
    """Set the rate of the next epoch (0-based `epoch`) from the schedule again, after a callback changed it at the
    end of an epoch: Lightning 2.6 steps an epoch's scheduler before those hooks."""
    if not trainer.lr_scheduler_configs:
        return
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    for group, base, factor in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas,
                                   strict=True):  # fmt: skip
        group["lr"] = base * factor(epoch)
    scheduler._last_lr = [g["lr"] for g in scheduler.optimizer.param_groups]


class _Record(L.Callback):
    """One history row per epoch, once both the training and the validation means are known."""

    def __init__(self, history: History):
        self.history = history
        self.lr: float | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, module: LitClassifier) -> None:
        # the epoch's own rate (at its end the scheduler has already set the next epoch's)
        self.lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None

    def on_train_epoch_end(self, trainer: L.Trainer, module: LitClassifier) -> None:
        if not trainer.is_global_zero or not _epoch_complete(trainer):
            return
        m = trainer.callback_metrics
        value = lambda k: float(m[k]) if k in m else None
        self.history.epoch(trainer.current_epoch + 1, train_loss=value("train_loss"), train_acc=value("train_acc"),
                           val_loss=value("val_loss"), val_acc=value("val_acc"), lr=self.lr)  # fmt: skip


def _epoch_complete(trainer: L.Trainer) -> bool:
    """Whether the epoch now validated ran all its batches. A signal or the time cap stops training after the
    current batch, and Lightning then validates the part-epoch; signrec keeps only whole epochs (in the history,
    the best model and the resume point), so that a resumed run goes on with the next epoch and its history,
    early stopping and best model read as those of a run that was never stopped. A stop costs at most the
    batches of one epoch."""
    return bool(trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)


class _WholeEpochs:
    """For Lightning's best-model checkpoint and early stopping: a part-epoch is neither a best model nor an
    epoch without improvement. Saved in checkpoints under the Lightning class's own key (`_base`), so that run
    folders written before keep their best score and count when resumed."""

    _base = ""

    @property
    def state_key(self) -> str:
        return super().state_key.replace(type(self).__qualname__, self._base, 1)  # type: ignore[misc]

    def on_validation_end(self, trainer: L.Trainer, module: LitClassifier) -> None:
        if _epoch_complete(trainer):
            super().on_validation_end(trainer, module)  # type: ignore[misc]

    def on_train_epoch_end(self, trainer: L.Trainer, module: LitClassifier) -> None:
        if _epoch_complete(trainer):
            super().on_train_epoch_end(trainer, module)  # type: ignore[misc]


class _BestCheckpoint(_WholeEpochs, L.pytorch.callbacks.ModelCheckpoint):
    _base = "ModelCheckpoint"


class _EarlyStopping(_WholeEpochs, L.pytorch.callbacks.EarlyStopping):
    _base = "EarlyStopping"

    def on_train_start(self, trainer: L.Trainer, module: LitClassifier) -> None:
        if self.wait_count >= self.patience:  # resumed after it stopped (killed before the run was written)
            self.stopped_epoch = max(self.stopped_epoch, 1)
            trainer.should_stop = True


class _ResumePoint(L.pytorch.callbacks.Checkpoint):
    """`last.ckpt` after every whole epoch, written under a temporary name and then renamed.

    Lightning's own `save_last` (2.6) writes it only when the monitored metric improved, so a run whose
    validation loss had stopped improving resumed from its best epoch and trained the epochs after it again.
    It is written at the end of the epoch (after validation, the best model and early stopping's count), the
    point from which Lightning resumes with the next epoch."""

    def __init__(self, path: Path):
        self.path = path

    def on_train_epoch_end(self, trainer: L.Trainer, module: LitClassifier) -> None:
        if not _epoch_complete(trainer):
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        trainer.save_checkpoint(tmp)  # every process takes part; rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, self.path)


class _GracefulStop(L.Callback):
    """SIGINT and SIGTERM ask the trainer to stop after the current batch (a second SIGINT stops at once).

    With several processes, a signal that reached any of them stops all of them after the same batch: the
    processes agree at the end of each batch, since one that left training early would leave the others waiting
    in their next gradient exchange."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def _handler(self, trainer: L.Trainer) -> Callable:
        def handle(signum: int, frame: Any) -> None:
            if self.signum == signal.SIGINT and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.signum = signum
            if trainer.world_size == 1:
                trainer.should_stop = True

        return handle

    def on_train_batch_end(self, trainer: L.Trainer, module: LitClassifier, *args: Any) -> None:
        if trainer.world_size > 1 and trainer.strategy.reduce_boolean_decision(self.signum is not None, all=False):
            trainer.should_stop = True

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


class ShardSampler(Sampler[int]):
    """Indices `rank, rank + world, ...`: each process a disjoint share, nothing repeated or dropped (so an
    evaluation over all processes counts every clip exactly once; shares may differ by one clip)."""

    def __init__(self, n: int, rank: int, world: int):
        self.n, self.rank, self.world = n, rank, world

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world))


class EpochDraws(Sampler[tuple[int, int]]):
    """`(index, epoch)` in the order of `inner`: with several data workers each one counts only the clips it reads,
    so the epoch (which Lightning sets here each epoch, as on any sampler with `set_epoch`) numbers the draws."""

    def __init__(self, inner: Sampler[int]):
        self.inner, self.epoch = inner, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.inner, "set_epoch"):
            self.inner.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((i, self.epoch) for i in self.inner)

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]


def loaders(store: KeypointStore, train: tuple[list[Clip], np.ndarray], val: tuple[list[Clip], np.ndarray],
            preprocess: Callable, augment: Callable | None, config: TrainConfig, padding: str,
            fixed_frames: int | None, workers: int = 0, rank: int = 0, world: int = 1) -> tuple[DataLoader, DataLoader]:  # fmt: skip
    """Training (shuffled, augmented) and validation loaders over the store, for process `rank` of `world`."""
    batches = collate(padding, fixed_frames)
    # Workers are spawned, not forked: a fork of a process that runs JAX's or MediaPipe's threads can deadlock.
    # Only the training loader gets workers: validation batches are not augmented, so each clip is made once and
    # kept for the epochs after.
    extra = ({"num_workers": workers, "persistent_workers": True, "multiprocessing_context": "spawn"}
             if workers else {})  # fmt: skip
    train_ds = ClipDataset(store, *train, preprocess, augment, config.seed + rank)
    val_ds = ClipDataset(store, *val, preprocess, keep=True)
    shuffle = torch.Generator().manual_seed(config.seed) if world == 1 else None
    if world == 1:  # what DataLoader's shuffle=True makes (its generator also seeds each epoch's workers)
        order: Sampler[int] = RandomSampler(train_ds, generator=shuffle)
        val_dl = DataLoader(val_ds, batch_size=config.batch_size, shuffle=False, collate_fn=batches)
    else:  # equal shares (DDP steps together), reshuffled each epoch (Lightning calls set_epoch)
        order = DistributedSampler(train_ds, num_replicas=world, rank=rank, shuffle=True, seed=config.seed)
        val_dl = DataLoader(val_ds, batch_size=config.batch_size, sampler=ShardSampler(len(val_ds), rank, world),
                            collate_fn=batches)  # fmt: skip
    sampler = EpochDraws(order) if workers > 1 else order
    train_dl = DataLoader(train_ds, batch_size=config.batch_size, sampler=sampler, collate_fn=batches,
                          generator=shuffle, **extra)  # fmt: skip
    return train_dl, val_dl


class _Data(L.LightningDataModule):
    """Loaders made once the trainer knows this process's rank and the number of processes."""

    def __init__(self, make: Callable[[int, int], tuple[DataLoader, DataLoader]]):
        super().__init__()
        self.make = make
        self._made: tuple[DataLoader, DataLoader] | None = None

    def _loaders(self) -> tuple[DataLoader, DataLoader]:
        if self._made is None:
            self._made = self.make(self.trainer.global_rank, self.trainer.world_size)
        return self._made

    def train_dataloader(self) -> DataLoader:
        return self._loaders()[0]

    def val_dataloader(self) -> DataLoader:
        return self._loaders()[1]


def _end_launch(trainer: L.Trainer, saved_env: dict[str, str | None]) -> None:
    """In the process that started the others (Lightning's launcher on this machine): wait for them to leave,
    close the process group and restore the environment, so that a later training run in this process (the next
    model of `signrec run`) starts its own processes again instead of waiting for ones that are gone."""
    procs = getattr(getattr(trainer.strategy, "launcher", None), "procs", None) or []
    if not procs:
        _restore({"OMP_NUM_THREADS": saved_env["OMP_NUM_THREADS"]})
        return
    deadline = time.monotonic() + CHILD_EXIT_SECONDS
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    _restore(saved_env)


def _restore(saved_env: dict[str, str | None]) -> None:
    for key, value in saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _ema_update(decay: float, averaged: torch.Tensor, current: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
    """One step of the weights' moving average, with the usual warm-up: the decay is min(decay, (1 + n) / (10 + n))
    after n steps, so that a small data set (a few steps an epoch) is not judged on its first, random weights."""
    n = float(steps)
    d = min(decay, (1 + n) / (10 + n))
    return averaged * d + current * (1 - d)


def _ema(decay: float) -> L.Callback:
    """Lightning's weight averaging with `_ema_update`: validation, checkpoints and the saved model use the average."""
    import functools

    class EMA(L.pytorch.callbacks.WeightAveraging):
        def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
            return step_idx is not None  # every optimiser step

    return EMA(use_buffers=True, avg_fn=functools.partial(_ema_update, decay))


def seed(value: int) -> None:
    """Python's, numpy's and torch's random state from `value`: called before a model is built (its initial
    weights) and again when training starts (the data order and augmentation)."""
    L.seed_everything(value, workers=True, verbose=False)


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
    replay: dict | None = None,
) -> tuple[nn.Module, History, dict]:
    """Train `model` on the store's clips; returns the best model (lowest validation loss), its history and a
    summary (epochs, best epoch, why it stopped, the schedule's `plan`, threads). Raises `Interrupted` after
    saving what a signal stopped (the caller writes the run).

    `replay` (a validated run's `plan`: epochs, and the plateau decay's start and length) trains without
    validation (`val` is empty): for exactly that many epochs, with the same learning rates, keeping the last
    epoch's model. It is how a model refits on its training and validation clips once validation has said how
    long to train."""
    out = Path(out)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no banners; our lines say enough
    logging.getLogger("lightning.fabric").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*(LeafSpec|does not have many workers|sync_dist|Checkpoint directory).*")
    seed(config.seed)
    loss = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    train_dl, _ = loaders(store, train, val, preprocess, augment, config, padding, fixed_frames)
    probe_batch = next(iter(train_dl))
    per_process = config.threads
    if per_process is None and config.devices > 1:  # the processes of this machine share its cores
        per_process = max(1, thread_choice.cores() // config.devices)
    max_epochs = replay["epochs"] if replay else config.max_epochs
    planned = len(train_dl) * max_epochs
    if config.precision not in ("32", "bf16"):
        raise ValueError(f"fit trains in float32 or bf16; resolve {config.precision!r} first (runner.resolved)")
    choice = thread_choice.choose(model, probe_batch, loss, lambda: next(iter(train_dl)), per_process, planned,
                                  accelerator=torch.cuda.is_available(),  # Lightning's "auto" trains there
                                  bf16=config.precision == "bf16")  # fmt: skip
    if config.threads is None and config.devices > 1:
        choice.how += f" ({thread_choice.cores()} cores shared by {config.devices} processes)"
    data = _Data(lambda rank, world: loaders(store, train, val, preprocess, augment, config, padding, fixed_frames,
                                             choice.workers, rank, world))  # fmt: skip
    plateau = _Plateau(config) if config.schedule == "plateau" else None
    if plateau and replay and replay.get("decay_start") is not None:  # the validated run's rates, epoch by epoch
        plateau.decay_start, plateau.decay_epochs = replay["decay_start"], replay["decay_epochs"]
    replayer = _Replay(max_epochs) if replay else None
    module = LitClassifier(model, config, plateau, replayer)
    ckpt_dir = out / "lightning"
    last = ckpt_dir / LAST_CKPT
    resume = resume and last.exists()
    # the epochs the resume point holds: history rows after them (a kill between a row and its checkpoint, or a
    # resume point written by an older signrec at the best epoch) are trained again, so they are dropped
    primary = ranks.is_primary()  # the others of a distributed run never write the history
    done = torch.load(last, map_location="cpu", weights_only=True)["epoch"] + 1 if resume and primary else None
    # with the plateau schedule the decay ends training, not early stopping (which would cut the decay short)
    patience = config.max_epochs if plateau else config.patience
    left = replayer.epochs_left if replayer else plateau.epochs_left if plateau else None
    history = History(out / "history.csv", max_epochs, patience, config.progress,
                      desc="refit" if replay else "train", max_minutes=config.max_minutes, resume=resume,
                      epochs_done=done, left=left)  # fmt: skip
    # the lowest validation loss; without validation (a replay), the last epoch
    best_ckpt = _BestCheckpoint(dirpath=ckpt_dir, filename="best", monitor=None if replay else "val_loss", mode="min",
                                save_top_k=1, save_last=False, enable_version_counter=False,
                                save_on_train_epoch_end=True if replay else None)  # fmt: skip
    stop = _EarlyStopping(monitor="val_loss", mode="min", patience=patience)
    graceful = _GracefulStop()
    averaging = [_ema(config.ema)] if config.ema else []
    loggers: list = []
    try:
        loggers.append(L.pytorch.loggers.TensorBoardLogger(out, name="tensorboard", version=""))
    except ModuleNotFoundError:  # pragma: no cover - tensorboard is a dependency; keep training without it
        pass
    trainer = L.Trainer(
        max_epochs=max_epochs, accelerator="auto", devices=config.devices, strategy=config.strategy,
        num_nodes=config.num_nodes, logger=loggers or False, use_distributed_sampler=False,
        limit_val_batches=0 if replay else None,
        callbacks=[*averaging, *([plateau] if plateau else []), *([replayer] if replayer else []), best_ckpt,
                   _ResumePoint(last), *([] if replay else [stop]), graceful, _Record(history)],
        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1, deterministic=False, num_sanity_val_steps=0,
        gradient_clip_val=config.grad_clip or None, precision="bf16-mixed" if config.precision == "bf16" else "32-true",
        max_time={"minutes": config.max_minutes} if config.max_minutes else None,
    )  # fmt: skip
    saved_env = {k: os.environ.get(k) for k in LAUNCH_VARS}
    if config.devices > 1 or config.num_nodes > 1:
        # Lightning's launcher would choose the threads per process itself; keep the choice made above (its
        # processes inherit it).
        os.environ["OMP_NUM_THREADS"] = str(choice.threads)
    try:
        trainer.fit(module, datamodule=data, ckpt_path=str(last) if resume else None)
    finally:
        graceful.restore()
        history.close()
        _end_launch(trainer, saved_env)
    if not trainer.is_global_zero:  # a secondary process: its part is done, rank 0 keeps the result
        return model, history, {"rank": trainer.global_rank, "world_size": trainer.world_size}
    if not best_ckpt.best_model_path:
        raise Interrupted(graceful.signum or signal.SIGINT, "training stopped before the first epoch ended; nothing to keep")
    best = torch.load(best_ckpt.best_model_path, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in best.items() if k.startswith("model.")})
    model.cpu().eval()
    if graceful.signum is not None:
        stopped = signal.Signals(graceful.signum).name
    elif replayer and replayer.finished and replayer.compressed:
        stopped = (f"the validated run's {epochs(max_epochs)}, compressed into {len(history.rows)} to end with its "
                   f"last rates within the time cap ({config.max_minutes:.1f} min)")  # fmt: skip
    elif replayer and replayer.finished:
        stopped = f"the validated run's length ({max_epochs} epochs)"
    elif plateau and plateau.finished and plateau.timed:
        stopped = (f"the time cap ({config.max_minutes:g} min): validation was still improving (last at epoch "
                   f"{plateau.plateau_after}) when the rate's decay had to start to end in time, after epoch "
                   f"{plateau.decay_start}; then {epochs(plateau.decay_epochs)} of decay")  # fmt: skip
    elif plateau and plateau.finished:
        stopped = (f"validation (no better val loss for {config.plateau_wait} epochs after epoch {plateau.plateau_after} "
                   f"by epoch {plateau.decay_start}, then {plateau.decay_epochs} epochs of decay)")  # fmt: skip
    elif config.max_minutes and trainer.current_epoch < config.max_epochs and not stop.stopped_epoch:
        stopped = f"time cap ({config.max_minutes:.3g} min)"
        if replayer:  # its epochs ran slower than those that fitted the plan to the cap
            stopped += (f", at epoch {replayer.position(replayer.done):.0f} of the validated run's {max_epochs}"
                        f"{' (compressed)' if replayer.compressed else ''}")  # fmt: skip
        elif plateau and plateau.decay_start is not None:  # the epochs ran slower than those that planned the decay
            stopped += (f", {epochs(plateau.decay_start + plateau.decay_epochs - len(history.rows))} before the end "
                        f"of the rate's decay (which started after epoch {plateau.decay_start})")  # fmt: skip
    elif stop.stopped_epoch:
        stopped = f"early stopping (no better val loss for {config.patience} epochs)"
    else:
        stopped = f"max epochs ({config.max_epochs})"
    plan = {"epochs": len(history.rows) if replay else history.best_epoch,  # what a refit replays
            "decay_start": plateau.decay_start if plateau else None, "decay_epochs": plateau.decay_epochs if plateau else 0}
    summary = {"epochs": len(history.rows), "best_epoch": len(history.rows) if replay else history.best_epoch,
               "stopped": stopped, "plan": plan,
               "seconds_per_epoch": history.seconds_per_epoch(), "device": str(trainer.strategy.root_device),
               "threads": choice.to_dict(), "signal": graceful.signum, "rank": trainer.global_rank,
               "world_size": trainer.world_size}  # fmt: skip
    return model, history, summary
