"""Training both frameworks on real keypoints: checkpoints, comparison, fingerprints, signals, Keras options."""

import itertools
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from signrec.checkpoint import CheckpointError, load_torch
from signrec.cli import main
from signrec.io import KeypointFileError, read_csv_rows
from signrec.predict import load_predictor
from signrec.presets import best, reference
from signrec.splits import Split
from signrec.store import NotAStoreError, open_store
from signrec.training.history import epochs_left, eta_seconds
from signrec.training.runner import RunConflict, train

EPOCHS = 30


@pytest.fixture(scope="module")
def webcam_signer(data_dir):
    """Real webcam keypoints of one signer: hello, iloveyou, thanks, 30 clips each, 30 frames."""
    return data_dir / "keypoints" / "webcam" / "akashsharma095"


def _validation_losses(loss_of_epoch):
    """A `LitClassifier.validation_step` whose validation loss is `loss_of_epoch(epoch)` (0-based), accuracy 0."""
    import torch

    def step(self, batch, batch_idx):
        loss, acc = self.metrics["val_loss"], self.metrics["val_acc"]
        loss.update(torch.tensor(float(loss_of_epoch(self.current_epoch))), weight=len(batch[2]))
        acc.update(torch.zeros(len(batch[2])))
        self.log("val_loss", loss, on_step=False, on_epoch=True)
        self.log("val_acc", acc, on_step=False, on_epoch=True)

    return step


def quick(recipe, **config):
    return recipe.with_config(progress=False, **config)


def _test_accuracy(run, data):
    predictor = load_predictor(run)
    store = open_store(data)
    test = store.subset(Split.load(run / "split.json").test)
    probs = predictor.predict_proba([store.read(c) for c in test])
    y = np.array([predictor.labels.index(c.gloss) for c in test])
    return (probs.argmax(1) == y).mean(), probs


@pytest.fixture(scope="module")
def torch_run(webcam_signer, tmp_path_factory):
    out = tmp_path_factory.mktemp("torch_run")
    return out, train(webcam_signer, out, quick(reference(), max_epochs=EPOCHS))


@pytest.fixture(scope="module")
def keras_run(webcam_signer, tmp_path_factory, torch_run):
    out = tmp_path_factory.mktemp("keras_run")
    r = train(webcam_signer, out, quick(reference(), max_epochs=EPOCHS), "keras", split=str(torch_run[0] / "split.json"))
    return out, r


@pytest.mark.slow
@pytest.mark.parametrize("which", ["torch_run", "keras_run"])
def test_training_learns_on_real_keypoints(which, request, webcam_signer):
    run, result = request.getfixturevalue(which)
    acc, probs = _test_accuracy(run, webcam_signer)
    assert acc >= 0.7, f"{result.framework}: held-out accuracy {acc:.2f} (chance 0.33)"
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    assert result.parameters == 596_708 - 33  # 3 glosses: the reference minus one output unit (32 weights + bias)
    history = read_csv_rows(run / "history.csv")
    assert 1 <= len(history) <= EPOCHS and float(history[-1]["train_loss"]) < float(history[0]["train_loss"])


@pytest.mark.slow
def test_both_frameworks_use_the_same_split(torch_run, keras_run):
    a, b = Split.load(torch_run[0] / "split.json"), Split.load(keras_run[0] / "split.json")
    assert a.sides() == b.sides()
    assert not set(a.train) & set(a.test) and not set(a.val) & set(a.test) and a.test


@pytest.mark.slow
def test_checkpoint_describes_itself_and_round_trips(torch_run, keras_run, webcam_signer):
    store = open_store(webcam_signer)
    xs = [store.read(c) for c in store.clips[:10]]
    for run, _ in (torch_run, keras_run):
        a, b = load_predictor(run), load_predictor(run)
        assert a.labels == ["hello", "iloveyou", "thanks"]
        assert a.card.layout == "holistic-1662-v1" and a.preprocess.max_frames == 30
        assert a.card.training["frames_median"] == 30 and a.card.training["status"] == "finished"
        np.testing.assert_array_equal(a.predict_proba(xs), b.predict_proba(xs))
    # The Lightning path saved the best (lowest validation loss) weights, not the last ones.
    _model, card = load_torch(torch_run[0] / "model.pt")
    losses = [float(r["val_loss"]) for r in read_csv_rows(torch_run[0] / "history.csv")]
    assert card.training["best_epoch"] == int(np.argmin(losses)) + 1
    assert card.training["threads"]["threads"] >= 1 and card.training["threads"]["how"] == "measured"


def test_loading_a_malicious_checkpoint_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "model.pt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": Evil()}, f)
    with pytest.raises(CheckpointError, match="model.pt"):
        load_torch(path)
    assert not marker.exists()


def test_corrupt_or_wrong_shape_file_is_named(tmp_path, webcam_signer):
    for gloss in ("hello", "thanks"):
        (tmp_path / gloss).mkdir()
        for i, src in enumerate(sorted((webcam_signer / gloss).glob("*.npy"))[:3]):
            np.save(tmp_path / gloss / f"{i}.npy", np.load(src))
    np.save(tmp_path / "thanks" / "wrong.npy", np.zeros((30, 258), np.float32))
    with pytest.raises(NotAStoreError, match=r"thanks/wrong.npy holds an array of shape \(30, 258\).*signrec data import"):
        open_store(tmp_path)
    (tmp_path / "thanks" / "wrong.npy").unlink()
    (tmp_path / "hello" / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises((KeypointFileError, ValueError), match="hello/broken.npy"):
        open_store(tmp_path)
    (tmp_path / "hello" / "broken.npy").unlink()
    np.save(tmp_path / "hello" / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises((KeypointFileError, ValueError), match="hello/pickled.npy"):
        open_store(tmp_path)


@pytest.mark.slow
def test_cli_train_and_compare(webcam_signer, tmp_path, capsys):
    rc = main(["compare", str(webcam_signer), "--out", str(tmp_path), "--max-epochs", "3", "--no-progress"])
    assert rc == 0
    rows = read_csv_rows(tmp_path / "comparison.csv")
    assert [r["framework"] for r in rows] == ["torch", "keras"]
    assert rows[0]["parameters"] == rows[1]["parameters"] == "596,675"  # same architecture, same count
    assert all(1 <= int(r["epochs"]) <= 3 for r in rows)
    report = (tmp_path / "report.md").read_text()
    assert "torch/lstm" in report and "keras/lstm" in report and "confusion" in report
    assert "Command:" in report and "stratified (seed 0)" in report  # says what made it
    assert (tmp_path / "runs" / "torch" / "eval-akashsharma095-test" / "confusion.png").exists()


def test_seed_faithful_read_trains_through_the_cli(webcam_signer, tmp_path, capsys):
    rc = main(["train", str(webcam_signer), "--out", str(tmp_path), "--max-epochs", "2", "--read", "final",
               "--activation", "relu", "--no-progress"])  # fmt: skip
    assert rc == 0 and "596,675 parameters" in capsys.readouterr().out
    p = load_predictor(tmp_path)
    assert p.card.model_config["read"] == "final" and p.card.model_config["activation"] == "relu"
    assert p.predict_proba([np.zeros((10, 1662), np.float32)]).shape == (1, 3)


@pytest.mark.slow
def test_same_settings_reuse_other_settings_refuse_force_replaces(webcam_signer, tmp_path):
    recipe = quick(reference(), max_epochs=2)
    first = train(webcam_signer, tmp_path, recipe)
    mtime = (tmp_path / "model.pt").stat().st_mtime_ns
    again = train(webcam_signer, tmp_path, recipe)
    assert again.reused and again.fingerprint == first.fingerprint
    assert (tmp_path / "model.pt").stat().st_mtime_ns == mtime
    with pytest.raises(RunConflict, match=r"made differently \(lr 0.001 -> 0.0005\).*--force"):
        train(webcam_signer, tmp_path, recipe.with_config(lr=5e-4))
    with pytest.raises(RunConflict, match="the split"):
        train(webcam_signer, tmp_path, recipe, split="stratified:3")
    replaced = train(webcam_signer, tmp_path, recipe.with_config(lr=5e-4), force=True)
    assert not replaced.reused and replaced.fingerprint != first.fingerprint
    # what does not change the model (progress, threads, a time cap) does not count as a different run
    assert train(webcam_signer, tmp_path, recipe.with_config(lr=5e-4, threads=1, max_minutes=5)).reused


def test_training_progress_counts_to_the_nearest_stop():
    # best at epoch 10, patience 30: stops at 40 at the latest, not at max_epochs 2000
    assert epochs_left(12, 10, 30, 2000) == 28
    assert epochs_left(12, 10, 30, 15) == 3  # max epochs first
    assert epochs_left(45, 10, 30, 2000) == 0
    assert eta_seconds(12, 10, 30, 2000, 2.0) == 56.0
    assert eta_seconds(12, 10, 30, 2000, 2.0, elapsed=170, max_minutes=3) == 10.0  # the time cap first


@pytest.mark.slow
@pytest.mark.parametrize(("framework", "sig", "status"), [("torch", signal.SIGTERM, 143), ("keras", signal.SIGINT, 130)])
def test_a_signal_keeps_the_best_model_and_the_same_command_resumes(webcam_signer, tmp_path, framework, sig, status):
    """Issue 13.7: SIGTERM used to exit 0 with no model.pt, Ctrl-C to exit 1 without a word."""
    out = tmp_path / "run"
    epochs = 20
    cmd = [sys.executable, "-m", "signrec.cli", "train", str(webcam_signer), "--out", str(out), "--framework",
           framework, "--max-epochs", str(epochs), "--patience", str(epochs), "--threads", "1", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    history = out / "history.csv"
    deadline = time.time() + 120
    while time.time() < deadline and len(read_csv_rows(history) if history.exists() else []) < 3:
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    assert f"stopped by {signal.Signals(sig).name}" in err and "Run the same command again to resume" in err
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    predictor = load_predictor(out)  # a usable run, card included
    assert predictor.card.training["status"] == "interrupted" and predictor.labels == ["hello", "iloveyou", "thanks"]
    done_before = len(read_csv_rows(history))
    assert 3 <= done_before < epochs
    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming the interrupted run" in resumed.stdout
    assert [int(r["epoch"]) for r in read_csv_rows(history)] == list(range(1, epochs + 1))  # continued, not restarted
    assert json.loads((out / "run.json").read_text())["status"] == "finished"


def test_keras_applies_every_training_option_it_records(webcam_signer, tmp_path):
    """Issue 11.2: Keras used to train with plain Adam on unaugmented data whatever the card said."""
    from signrec.training.config import TrainConfig
    from signrec.training.keras_train import batches, make_optimizer

    opt = make_optimizer(TrainConfig(optimizer="adamw", weight_decay=0.05, schedule="cosine", warmup_epochs=2,
                                     max_epochs=10, grad_clip=1.0, lr=2e-3), steps_per_epoch=4)  # fmt: skip
    assert type(opt).__name__ == "AdamW" and opt.weight_decay == pytest.approx(0.05) and opt.clipnorm == 1.0
    schedule = opt.learning_rate if callable(opt.learning_rate) else opt._learning_rate
    rates = [float(schedule(step)) for step in (0, 4, 8, 20, 40)]
    assert rates[2] == pytest.approx(2e-3, rel=1e-3) and rates[0] < rates[1] < rates[2] > rates[3] > rates[4]
    with pytest.raises(ValueError, match="use --optimizer adamw"):
        make_optimizer(TrainConfig(weight_decay=0.1), 4)
    store = open_store(webcam_signer)
    clips = store.clips[:8]
    y = np.zeros(8, np.int64)
    recipe = best()
    pre = recipe.preprocess.for_parts(store.parts)
    data = batches(store, clips, y, 3, pre, 64, "post", 8, shuffle=False, augment=recipe.augment, seed=0)
    first = data[0][0].copy()
    data.on_epoch_end()
    second = data[0][0]
    assert first.shape == second.shape == (8, 64, pre.num_features)
    assert not np.array_equal(first, second)  # augmented anew every epoch
    plain = batches(store, clips, y, 3, pre, 64, "post", 8, shuffle=False)
    np.testing.assert_array_equal(plain[0][0], plain[0][0])


@pytest.mark.slow
def test_keras_run_card_records_what_was_applied(webcam_signer, tmp_path):
    import zipfile

    train(webcam_signer, tmp_path, quick(reference(), max_epochs=2, optimizer="adamw", weight_decay=0.01,
                                         schedule="cosine", grad_clip=1.0), "keras")  # fmt: skip
    card = load_predictor(tmp_path).card
    assert (card.training["optimizer"], card.training["weight_decay"], card.training["grad_clip"]) == ("adamw", 0.01, 1.0)
    with zipfile.ZipFile(tmp_path / "model.keras") as z:  # what Keras itself saved about its optimiser
        optimizer = json.loads(z.read("config.json"))["compile_config"]["optimizer"]
    assert optimizer["class_name"] == "AdamW" and optimizer["config"]["weight_decay"] == pytest.approx(0.01)
    assert optimizer["config"]["clipnorm"] == 1.0
    assert optimizer["config"]["learning_rate"]["class_name"] == "CosineDecay"


@pytest.mark.slow
def test_ema_weights_are_what_is_validated_and_saved(webcam_signer, tmp_path):
    import torch

    train(webcam_signer, tmp_path, quick(best(), max_epochs=2, ema=0.9))
    ckpt = torch.load(tmp_path / "lightning" / "best.ckpt", map_location="cpu", weights_only=True)
    averaged, current = ckpt["state_dict"], ckpt["current_model_state"]
    saved = torch.load(tmp_path / "model.pt", map_location="cpu", weights_only=True)["state_dict"]
    name = "model.head.1.weight"
    torch.testing.assert_close(saved[name.removeprefix("model.")], averaged[name])
    assert not torch.allclose(averaged[name], current[name])  # the moving average, not the last step's weights


@pytest.mark.parametrize("guarded", [True, False])
def test_a_data_worker_is_spawned_only_from_a_script_that_can_be_imported_again(tmp_path, guarded):
    """A script without a `__main__` guard would train again inside the spawned worker, which dies, and the
    parent then blocks forever writing to its pipe: such a script must get no worker (a hang found by hand)."""
    body = "from signrec.training.threads import can_spawn\nprint(can_spawn())\n"
    if guarded:
        body = "from signrec.training.threads import can_spawn\nif __name__ == '__main__':\n    print(can_spawn())\n"
    script = tmp_path / "user_script.py"
    script.write_text(body)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == str(guarded)
    piped = subprocess.run([sys.executable, "-"], input=body, capture_output=True, text=True, timeout=60, check=True)
    assert piped.stdout.strip() == "False"  # read from stdin: nothing a worker could import


def test_a_data_worker_only_where_it_repays_its_start(monkeypatch):
    """A worker is chosen when batches are slow to make compared with a step and the run is long enough to repay
    starting a process; never for quick batches (the reference recipe's were slower through a worker)."""
    import torch

    from signrec.training import threads as thread_choice

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 3)

        def forward(self, x, mask):
            return self.linear(x)

    monkeypatch.setattr(thread_choice, "cores", lambda: 2)
    # every training step takes 20 ms a thread: one thread is the fastest, leaving a core for a worker
    monkeypatch.setattr(thread_choice, "_time_steps", lambda step, n, give_up_after=0: 0.02 * n)
    batch = (torch.randn(8, 4), None, torch.randint(0, 3, (8,)))

    def choice(data_seconds, planned):
        return thread_choice.choose(Model(), batch, torch.nn.functional.cross_entropy,
                                    lambda: time.sleep(data_seconds), None, planned)  # fmt: skip

    assert choice(0.05, planned=10_000).workers == 1  # slow batches, a long run
    assert choice(0.05, planned=10_000).threads == 1
    assert choice(0.005, planned=10_000).workers == 0  # quick batches: passing them between processes costs more
    assert choice(0.05, planned=20).workers == 0  # one second of batches does not repay starting a process
    # Two threads train faster than one (16 vs 28 ms a step), but a batch takes 32 ms to make: in place a step
    # costs 48 ms, with a worker beside one training thread 32 ms. The old rule chose two threads and no worker
    # (it did so for WLASL300, where the measured times were ten times these).
    monkeypatch.setattr(thread_choice, "_time_steps", lambda step, n, give_up_after=0: {1: 0.028, 2: 0.016}[n])
    chosen = choice(0.032, planned=10_000)
    assert (chosen.threads, chosen.workers) == (1, 1)
    assert (choice(0.004, planned=10_000).threads, choice(0.004, planned=10_000).workers) == (2, 0)


@pytest.mark.parametrize("bf16", [True, False])
def test_the_thread_measurement_times_steps_in_the_arithmetic_training_uses(bf16):
    import torch

    from signrec.training import threads as thread_choice

    dtypes = []

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 3)

        def forward(self, x, mask):
            out = self.linear(x)
            dtypes.append(out.dtype)
            return out

    batch = (torch.randn(8, 4), None, torch.randint(0, 3, (8,)))
    thread_choice.choose(Model(), batch, torch.nn.functional.cross_entropy, bf16=bf16)
    assert dtypes and set(dtypes) == {torch.bfloat16 if bf16 else torch.float32}


def test_beside_a_gpu_the_cores_make_batches(monkeypatch):
    """Training on a GPU leaves the CPU only the batches to make: up to MAX_GPU_WORKERS workers, one core kept
    for the training process, no CPU steps timed; none where the whole run's batches would not repay them."""
    import torch

    from signrec.training import threads as thread_choice

    def never(*args, **kwargs):
        raise AssertionError("CPU training steps timed for a run on a GPU")

    monkeypatch.setattr(thread_choice, "_time_steps", never)
    monkeypatch.setattr(thread_choice, "can_spawn", lambda: True)
    model = torch.nn.Linear(4, 3)
    batch = (torch.randn(8, 4), None, torch.randint(0, 3, (8,)))

    def choice(cores, planned, data_seconds=0.05, fixed=None):
        monkeypatch.setattr(thread_choice, "cores", lambda: cores)
        return thread_choice.choose(model, batch, torch.nn.functional.cross_entropy, lambda: time.sleep(data_seconds),
                                    fixed, planned, accelerator=True)  # fmt: skip

    threads = torch.get_num_threads()
    try:
        big = choice(16, planned=10_000)
        assert (big.workers, big.threads) == (thread_choice.MAX_GPU_WORKERS, 16 - thread_choice.MAX_GPU_WORKERS)
        assert "8 data workers on 16 cores" in big.how
        assert (choice(4, planned=10_000).workers, choice(4, planned=10_000).threads) == (3, 1)
        assert choice(1, planned=10_000).workers == 0  # no core to spare
        assert choice(16, planned=20).workers == 0  # one second of batches does not repay starting processes
        # --threads 4, or one of four processes on 16 cores: the workers come out of that share, not the machine
        given = choice(16, planned=10_000, fixed=4)
        assert (given.workers, given.threads) == (3, 1) and "3 data workers on 4 cores" in given.how
        monkeypatch.setattr(thread_choice, "can_spawn", lambda: False)  # a script a worker cannot re-import
        assert (choice(16, planned=10_000).workers, choice(16, planned=10_000).threads) == (0, 16)
    finally:
        torch.set_num_threads(threads)


def test_validation_clips_are_made_once_and_kept_for_later_epochs(webcam_signer, monkeypatch):
    """Validation inputs are the same every epoch: each is read and preprocessed once, then kept (within a memory
    budget, past which clips are made anew each time), and what is kept is what would be made."""
    from signrec.training import lightning as tl
    from signrec.transforms import Augment

    store = open_store(webcam_signer)
    clips = store.clips[:5]
    made: list[int] = []

    def preprocess(a):
        made.append(len(a))
        return np.asarray(a, dtype=np.float32) * 2

    kept = tl.ClipDataset(store, clips, np.arange(5), preprocess, keep=True)
    epochs = [[kept[i] for i in range(5)] for _ in range(3)]
    assert len(made) == 5  # three epochs, each clip made once
    for i, c in enumerate(clips):
        for epoch in epochs:
            np.testing.assert_array_equal(epoch[i][0], np.asarray(store.read(c), dtype=np.float32) * 2)
            assert epoch[i][1] == i
    one = epochs[0][0][0].nbytes
    monkeypatch.setattr(tl, "KEEP_BYTES", 2 * one)  # room for about two clips
    made.clear()
    budget = tl.ClipDataset(store, clips, np.arange(5), preprocess, keep=True)
    for _ in range(2):
        for i in range(5):
            budget[i]
    assert budget.kept_bytes <= 2 * one and 1 <= len(budget.kept) < 5
    assert len(made) == 5 + 5 - len(budget.kept)  # the others made again in the second epoch
    with pytest.raises(ValueError, match="without augmentation"):
        tl.ClipDataset(store, clips, np.arange(5), preprocess, Augment(), keep=True)
    # the reference recipe's preprocessing can hand back a view of the stored file: what is kept is a read-only copy
    monkeypatch.setattr(tl, "KEEP_BYTES", 1 << 30)
    views = tl.ClipDataset(store, clips, np.arange(5), lambda a: a, keep=True)
    x, _ = views[0]
    assert x.flags.owndata and not x.flags.writeable
    np.testing.assert_array_equal(x, store.read(clips[0]))
    from signrec.training.config import TrainConfig

    train_dl, val_dl = tl.loaders(store, (clips[:3], np.arange(3)), (clips[3:], np.arange(2)), preprocess, None,
                                  TrainConfig(), "post", None)  # fmt: skip
    assert val_dl.dataset.keep and not train_dl.dataset.keep  # validation kept, training made anew


def test_several_data_workers_draw_each_clips_augmentation_by_epoch(webcam_signer):
    """Each data worker counts only the clips it reads, so with several (beside a GPU) a clip's k-th draw would
    repeat across workers and depend on how many there are: there the loader asks for (clip, epoch), the epoch
    numbering the draws. Two workers then give what batches made in place give, each epoch new augmentation."""
    import torch
    from lightning.fabric.utilities.data import _set_sampler_epoch
    from torch.utils.data import DataLoader

    from signrec.training import lightning as tl
    from signrec.training.config import TrainConfig
    from signrec.transforms import Augment

    store = open_store(webcam_signer)
    clips = store.clips[:6]

    def epochs(workers):
        train_dl, _ = tl.loaders(store, (clips, np.arange(6)), (clips[:1], np.zeros(1)), lambda a: a, Augment(),
                                 TrainConfig(seed=2), "post", None, workers=workers)  # fmt: skip
        if workers < 2:
            train_dl = DataLoader(train_dl.dataset, batch_size=None, sampler=tl.EpochDraws(train_dl.sampler))
        else:
            assert isinstance(train_dl.sampler, tl.EpochDraws)
            train_dl = DataLoader(train_dl.dataset, batch_size=None, sampler=train_dl.sampler, num_workers=workers,
                                  persistent_workers=True, multiprocessing_context="fork")  # fmt: skip
        out = []
        for epoch in range(3):
            _set_sampler_epoch(train_dl, epoch)  # what Lightning does before each epoch
            out.append({int(y): x for x, y in train_dl})
        return out

    here, there = epochs(0), epochs(2)
    for a, b in zip(here, there, strict=True):
        assert sorted(a) == sorted(b) == list(range(6))
        for i in range(6):
            np.testing.assert_array_equal(a[i], b[i])
    for i in range(6):  # a clip is augmented anew each epoch
        assert not np.array_equal(here[0][i], here[1][i]) and not np.array_equal(here[1][i], here[2][i])
    assert isinstance(tl.loaders(store, (clips, np.arange(6)), (clips[:1], np.zeros(1)), lambda a: a, Augment(),
                                 TrainConfig(), "post", None, workers=1)[0].sampler, torch.utils.data.RandomSampler)


def test_the_data_and_the_random_state_do_not_depend_on_where_batches_are_made(webcam_signer, monkeypatch):
    """The thread measurement decides, from the machine's load, whether a worker makes the batches and how many
    probe steps it takes; neither may change a run: augmented clips are the same in a worker as in place, and the
    random state after the measurement is the one before it (on the old code, both differed)."""
    import torch
    from torch.utils.data import DataLoader

    from signrec.training import threads as thread_choice
    from signrec.training.lightning import ClipDataset
    from signrec.transforms import Augment

    store = open_store(webcam_signer)
    clips = store.clips[:6]

    def dataset():
        return ClipDataset(store, clips, np.zeros(len(clips)), lambda a: a, Augment(), seed=3)

    def two_epochs(loader_options):
        loader = DataLoader(dataset(), batch_size=None, shuffle=False, **loader_options)
        return [x for _ in range(2) for x, _ in loader]

    here = two_epochs({})
    there = two_epochs({"num_workers": 1, "persistent_workers": True, "multiprocessing_context": "fork"})
    assert len(here) == 12 and not np.array_equal(here[0], here[6])  # a clip is augmented anew each epoch
    for a, b in zip(here, there, strict=True):
        np.testing.assert_array_equal(a, b)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = torch.nn.Dropout(0.5)  # draws from the random state in every probe step
            self.linear = torch.nn.Linear(4, 3)

        def forward(self, x, mask):
            return self.linear(self.drop(x))

    torch.manual_seed(0)
    model, batch = Model(), (torch.randn(8, 4), None, torch.randint(0, 3, (8,)))
    before = torch.get_rng_state()
    thread_choice.choose(model, batch, torch.nn.functional.cross_entropy)
    assert torch.equal(torch.get_rng_state(), before)


def test_the_resume_point_is_the_last_epoch_even_when_validation_stopped_improving(webcam_signer, tmp_path, monkeypatch):
    """Lightning 2.6 writes `last.ckpt` only when the monitored metric improves, so a run whose validation loss
    stopped improving resumed from its best epoch and trained again the epochs after it (CI: history rows 1, 2,
    3, 4, 2, 3, ...). The resume point must be the last finished epoch."""
    import torch

    from signrec.training import lightning as lit

    rising = _validation_losses(lambda epoch: epoch + 1.0)  # 1, 2, 3, ...: only the first epoch is the best

    monkeypatch.setattr(lit.LitClassifier, "validation_step", rising)
    out = tmp_path / "run"
    r = train(webcam_signer, out, quick(reference(), max_epochs=4, patience=10, threads=1))
    assert (r.epochs, r.best_epoch) == (4, 1)
    last = torch.load(out / "lightning" / lit.LAST_CKPT, map_location="cpu", weights_only=True)
    assert last["epoch"] + 1 == 4  # Lightning counts epochs from 0
    assert not list((out / "lightning").glob("*.tmp"))  # written whole, then renamed


def test_a_run_that_stopped_early_and_resumes_trains_no_more(webcam_signer, tmp_path, monkeypatch):
    """Killed after early stopping's last epoch but before the run was written, the same command resumed and
    trained another epoch (early stopping checks only after an epoch)."""

    from signrec.training import lightning as lit

    rising = _validation_losses(lambda epoch: epoch + 1.0)

    monkeypatch.setattr(lit.LitClassifier, "validation_step", rising)
    config = quick(reference(), max_epochs=10, patience=2, threads=1)
    r = train(webcam_signer, tmp_path, config)
    assert (r.epochs, r.best_epoch) == (3, 1) and r.stopped.startswith("early stopping")
    run = json.loads((tmp_path / "run.json").read_text())
    (tmp_path / "run.json").write_text(json.dumps({**run, "status": "running"}))
    again = train(webcam_signer, tmp_path, config)
    assert (again.epochs, again.best_epoch) == (3, 1) and again.stopped.startswith("early stopping")


def _best_mixup():
    return best().with_config(mixup=0.4)


@pytest.mark.parametrize("recipe", [reference, best, _best_mixup])
def test_the_same_seed_trains_the_same_model(webcam_signer, tmp_path, recipe):
    """The weights were initialised before the seed was set, from whatever the random state was: the same command
    trained a different model each time (two runs of 2 epochs gave hello 0.43 and 0.33 on the same clip)."""
    import torch

    config = quick(recipe(), max_epochs=2, threads=1)
    torch.manual_seed(123)  # the random state a caller left behind may not matter
    a = train(webcam_signer, tmp_path / "a", config)
    torch.rand(1000)
    b = train(webcam_signer, tmp_path / "b", config)
    clip = np.load(webcam_signer / "hello" / "000.npy")
    pa, pb = (load_predictor(r.run).predict_proba([clip], calibrated=False) for r in (a, b))
    np.testing.assert_allclose(pa, pb, atol=1e-6)
    other = train(webcam_signer, tmp_path / "c", quick(recipe(), max_epochs=2, threads=1, seed=1))
    assert not np.allclose(load_predictor(other.run).predict_proba([clip], calibrated=False), pa, atol=1e-4)


def test_a_part_epoch_is_not_kept_and_a_resumed_history_is_the_resume_points(webcam_signer, tmp_path, monkeypatch):
    """A signal stops training after the current batch and Lightning validates the part-epoch; it used to become
    the best model (and a history row) when it validated better, though a resumed run trains that epoch again.
    History rows past the resume point (a kill between a row and its checkpoint) are dropped on resume."""
    import os

    import torch

    from signrec.training import lightning as lit
    from signrec.training.stop import Interrupted

    falling = _validation_losses(lambda epoch: 10.0 - epoch)  # 10, 9, 8, ...: each validation is the best so far

    training_step = lit.LitClassifier.training_step

    def stopped_in_epoch_3(self, batch, batch_idx):
        if self.current_epoch == 2 and batch_idx == 0:
            os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler would, in the first of the epoch's two batches
        return training_step(self, batch, batch_idx)

    monkeypatch.setattr(lit.LitClassifier, "validation_step", falling)
    monkeypatch.setattr(lit.LitClassifier, "training_step", stopped_in_epoch_3)
    out, config = tmp_path / "run", quick(reference(), max_epochs=4, patience=10, threads=1)
    with pytest.raises(Interrupted):
        train(webcam_signer, out, config)
    load = lambda name: torch.load(out / "lightning" / name, map_location="cpu", weights_only=True)
    assert load("best.ckpt")["epoch"] == load(lit.LAST_CKPT)["epoch"] == 1  # the second epoch, not the part third
    assert [int(r["epoch"]) for r in read_csv_rows(out / "history.csv")] == [1, 2]
    run = json.loads((out / "run.json").read_text())
    assert (run["status"], run["epochs"], run["best_epoch"]) == ("interrupted", 2, 2)
    with open(out / "history.csv", "a") as f:  # killed after writing the row of epoch 3, before its checkpoint
        f.write("3,1.0,0.5,7.0,0.0,0.001,0.2\n")
    monkeypatch.setattr(lit.LitClassifier, "training_step", training_step)
    r = train(webcam_signer, out, config)
    rows = read_csv_rows(out / "history.csv")
    assert [int(x["epoch"]) for x in rows] == [1, 2, 3, 4] and float(rows[2]["val_loss"]) == 8.0
    assert (r.epochs, r.best_epoch, r.status) == (4, 4, "finished")


class _ScriptedKerasValidation:
    """`keras.Model.evaluate` with the validation losses of a script, if given (the real evaluation runs; its loss is
    replaced),
    recording the weights the model held when each validation began."""

    def __init__(self, monkeypatch, losses=None):
        from signrec.models.keras_lstm import import_keras

        keras = import_keras()

        self.losses, self.weights, real = losses, [], keras.Model.evaluate

        def evaluate(model, *args, **kwargs):
            self.weights.append([w.copy() for w in model.get_weights()])
            logs = real(model, *args, **kwargs)
            return logs if self.losses is None else {**logs, "loss": self.losses[len(self.weights) - 1]}

        monkeypatch.setattr(keras.Model, "evaluate", evaluate)


def _signal_in_epoch(monkeypatch, epoch):
    """SIGTERM, as a scheduler sends it, when the second training batch of `epoch` (1-based) is read."""
    import os
    from itertools import count

    from signrec.training import keras_train as kt

    real = kt.batches

    def batches(*args, **kwargs):
        data = real(*args, **kwargs)
        if args[8]:  # shuffled: the training batches
            cls, reads = type(data), count()
            get = cls.__getitem__

            def getitem(self, i):
                if next(reads) == (epoch - 1) * len(self) + 1:
                    os.kill(os.getpid(), signal.SIGTERM)
                return get(self, i)

            cls.__getitem__ = getitem
        return data

    monkeypatch.setattr(kt, "batches", batches)


def test_keras_keeps_whole_epochs_and_its_best_model_across_a_resume(webcam_signer, tmp_path, monkeypatch):
    """Keras validates the part-epoch a signal cuts short: it became a history row, the resume point and (validating
    better) the best model. A resumed run restarted early stopping, so its patience began again and the model saved
    was the best epoch after the resume, the better one before it lost."""
    from signrec.models.keras_lstm import import_keras
    from signrec.training.stop import Interrupted

    keras = import_keras()

    val = _ScriptedKerasValidation(monkeypatch, [1.0, 2.0, 0.5, 3.0, 4.0, 5.0, 6.0, 7.0])  # 0.5: the part-epoch
    _signal_in_epoch(monkeypatch, 3)
    out, config = tmp_path / "run", quick(reference(), max_epochs=7, patience=2, threads=1, batch_size=16)
    with pytest.raises(Interrupted):
        train(webcam_signer, out, config, "keras")
    assert [int(r["epoch"]) for r in read_csv_rows(out / "history.csv")] == [1, 2]
    run = json.loads((out / "run.json").read_text())
    assert (run["status"], run["epochs"], run["best_epoch"]) == ("interrupted", 2, 1)
    saved = keras.saving.load_model(out / "model.keras", safe_mode=True, compile=False).get_weights()
    for a, b in zip(saved, val.weights[0], strict=True):
        np.testing.assert_array_equal(a, b)  # epoch 1's weights
    r = train(webcam_signer, out, config, "keras")  # resumes: epoch 3 is the second without a better loss
    assert [int(x["epoch"]) for x in read_csv_rows(out / "history.csv")] == [1, 2, 3]
    assert (r.epochs, r.best_epoch, r.status) == (3, 1, "finished") and r.stopped.startswith("early stopping")
    saved = keras.saving.load_model(out / "model.keras", safe_mode=True, compile=False).get_weights()
    for a, b in zip(saved, val.weights[0], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_keras_validates_and_saves_the_moving_average_of_the_weights(webcam_signer, tmp_path, monkeypatch):
    """With `ema` the card said the moving average was used, but Keras validated the raw weights and early stopping
    then put the raw weights of the best epoch back over the average."""
    from signrec.checkpoint import load_keras
    from signrec.training.runner import validation_probs

    val = _ScriptedKerasValidation(monkeypatch)
    r = train(webcam_signer, tmp_path, quick(reference(), max_epochs=3, patience=5, ema=0.9, optimizer="adamw",
                                            threads=1), "keras")  # fmt: skip
    net, card = load_keras(tmp_path / "model.keras")
    raw = val.weights[r.best_epoch - 1]  # the raw weights when the best epoch was validated
    assert not all(np.array_equal(a, b) for a, b in zip(net.get_weights(), raw, strict=True))
    store = open_store(webcam_signer)
    probs, y = validation_probs(net, card, "keras", store, store.subset(Split.load(tmp_path / "split.json").val))
    best_row = next(x for x in read_csv_rows(tmp_path / "history.csv") if int(x["epoch"]) == r.best_epoch)
    assert -np.log(probs[np.arange(len(y)), y]).mean() == pytest.approx(float(best_row["val_loss"]), rel=1e-3)


def test_the_plateau_schedule_lets_validation_end_training(webcam_signer, tmp_path, monkeypatch):
    """Issue 14: training stopped by validation, not by a fixed epoch count. The rate stays constant while the
    validation loss improves, then decays over half the epochs so far, and training ends with the decay."""

    from signrec.training import lightning as lit

    losses = [3.0, 2.0, 2.5, 2.6, 2.7, 1.0, 1.1]  # better until epoch 2, and once more during the decay

    scripted = _validation_losses(lambda epoch: losses[min(epoch, len(losses) - 1)])

    monkeypatch.setattr(lit.LitClassifier, "validation_step", scripted)
    config = quick(reference(), max_epochs=50, patience=50, threads=1, schedule="plateau", warmup_epochs=1,
                   plateau_wait=3)  # fmt: skip
    r = train(webcam_signer, tmp_path, config)
    # no better loss for 3 epochs after epoch 2: the decay starts after epoch 5 and lasts max(3, 5 / 2) epochs
    assert (r.epochs, r.best_epoch) == (8, 6) and r.stopped.startswith("validation")
    rates = [float(x["lr"]) for x in read_csv_rows(tmp_path / "history.csv")]
    assert rates[0] == rates[4] == pytest.approx(1e-3) and rates[4] > rates[5] > rates[6] > rates[7]
    assert rates[7] == pytest.approx(1e-5)  # the last epoch at 1%
    import os

    from signrec.training.stop import Interrupted

    training_step = lit.LitClassifier.training_step

    def stopped_in_epoch_7(self, batch, batch_idx):
        if self.current_epoch == 6 and batch_idx == 0:
            os.kill(os.getpid(), signal.SIGTERM)
        return training_step(self, batch, batch_idx)

    monkeypatch.setattr(lit.LitClassifier, "training_step", stopped_in_epoch_7)
    with pytest.raises(Interrupted):
        train(webcam_signer, tmp_path / "resumed", config)
    monkeypatch.setattr(lit.LitClassifier, "training_step", training_step)
    again = train(webcam_signer, tmp_path / "resumed", config)  # the decay goes on where it was
    assert (again.epochs, again.best_epoch) == (8, 6) and again.stopped == r.stopped
    assert [float(x["lr"]) for x in read_csv_rows(tmp_path / "resumed" / "history.csv")] == pytest.approx(rates)
    assert "after epoch 2 by epoch 5, then 3 epochs of decay" in r.stopped
    run = json.loads((tmp_path / "run.json").read_text())  # killed after the last epoch, before the run was written
    (tmp_path / "run.json").write_text(json.dumps({**run, "status": "running"}))
    assert train(webcam_signer, tmp_path, config).epochs == 8  # nothing left to train, not a ninth epoch


@pytest.mark.slow
def test_a_time_cap_starts_the_plateau_decay_in_time_to_end_within_it(webcam_signer, tmp_path, monkeypatch):
    """Issue 14: with a time cap, validation still improving, the plateau schedule starts its decay while the rest
    of the time still holds it, so training ends with the whole decay (the last epoch at 1% of the rate) inside
    the cap, instead of being cut at its constant rate (as it was: the cap stopped it mid-epoch)."""
    from signrec.training import lightning as lit

    monkeypatch.setattr(lit.LitClassifier, "validation_step", _validation_losses(lambda epoch: 10.0 / (epoch + 1)))
    # epochs of about a second, most of it this sleep, so that a loaded machine changes their length little
    monkeypatch.setattr(lit.LitClassifier, "on_train_epoch_start", lambda self: time.sleep(0.8), raising=False)
    config = quick(reference(), max_epochs=200, patience=200, threads=1, schedule="plateau", warmup_epochs=1,
                   plateau_wait=3, max_minutes=0.3)  # fmt: skip
    r = train(webcam_signer, tmp_path, config)
    rows = read_csv_rows(tmp_path / "history.csv")
    rates = [float(x["lr"]) for x in rows]
    start = next(i for i, rate in enumerate(rates) if rate < 1e-3 * 0.999)  # the first epoch of the decay
    assert 6 < start < len(rates) < 0.3 * 60 / 0.8 and r.epochs == len(rates) == r.best_epoch  # always better
    assert rates[1 : start] == pytest.approx([1e-3] * (start - 1)) and rates[-1] == pytest.approx(1e-5)
    assert all(a > b for a, b in zip(rates[start - 1 :], rates[start:]))  # the decay ran to its end
    assert r.stopped.startswith("the time cap (0.3 min): validation was still improving") and (
        f"after epoch {start}; then {len(rates) - start} epochs of decay" in r.stopped)  # fmt: skip
    with pytest.raises(RunConflict, match=r"max_minutes 0.3 -> None"):  # the cap shaped this run's schedule
        train(webcam_signer, tmp_path, config.with_config(max_minutes=None))

    def slower_in_the_decay(self):  # the machine slows down once the decay is planned: the cap cuts it, and says so
        time.sleep(0.8 if self.trainer.optimizers[0].param_groups[0]["lr"] > 0.999e-3 else 2.5)

    monkeypatch.setattr(lit.LitClassifier, "on_train_epoch_start", slower_in_the_decay, raising=False)
    cut = train(webcam_signer, tmp_path / "cut", config)
    decay = re.search(r"before the end of the rate's decay \(which started after epoch (\d+)\)", cut.stopped)
    assert cut.stopped.startswith("time cap (0.3 min), ") and decay and cut.epochs < len(rates)
    assert float(read_csv_rows(tmp_path / "cut" / "history.csv")[-1]["lr"]) > 1e-5


def test_progress_lines_of_the_plateau_schedule_say_when_it_can_stop(tmp_path, webcam_signer):
    """Early stopping's "stops within N epochs" means nothing when the schedule decides: the soonest end while
    waiting (the rest of the wait, then a decay of half the epochs by then), the decay's rest once it runs."""
    import io

    from signrec.training.config import TrainConfig
    from signrec.training.history import History
    from signrec.training.lightning import _Plateau

    plateau = _Plateau(TrainConfig(schedule="plateau", plateau_wait=3, warmup_epochs=1))
    plateau.done, plateau.bad = 5, 1
    assert plateau.epochs_left()[0] == 2 + 4  # 2 more epochs without a better loss, then round(0.5 * 7)
    out = io.StringIO()
    history = History(tmp_path / "h.csv", 300, 300, stream=out, left=plateau.epochs_left)
    history.epoch(5, train_loss=1.0, val_loss=1.0, val_acc=0.5)
    assert "stops in 6 epochs at the soonest" in out.getvalue() and "within 295" not in out.getvalue()
    capped = io.StringIO()  # --max-epochs 8 comes first: 3 epochs left, not 6
    History(tmp_path / "c.csv", 8, 8, stream=capped, left=plateau.epochs_left).epoch(5, train_loss=1.0,
                                                                                     val_loss=1.0, val_acc=0.5)
    assert "stops in 3 epochs, at max epochs (~" in capped.getvalue() and "at the soonest" not in capped.getvalue()
    plateau.decay_start, plateau.decay_epochs, plateau.done = 5, 3, 6
    assert plateau.epochs_left() == (2, "stops in 2 epochs (the rate's decay)")
    plateau.done = 7
    assert plateau.epochs_left() == (1, "stops in 1 epoch (the rate's decay)")
    ending = io.StringIO()  # the schedule's last epoch is always shown, however soon after the line before
    history = History(tmp_path / "e.csv", 300, 300, stream=ending, left=plateau.epochs_left)
    for done, loss in ((6, 1.0), (7, 2.0), (8, 2.0)):  # the first shown (the best), the second not (1 left)
        plateau.done = done
        history.epoch(done, train_loss=1.0, val_loss=loss, val_acc=0.5 if loss == 1.0 else 0.4)
    assert [line.split(" |")[0] for line in ending.getvalue().splitlines()] == ["train epoch 6/300", "train epoch 8/300"]
    with pytest.raises(ValueError, match="plateau_wait"):
        TrainConfig(schedule="plateau", plateau_wait=0)
    assert "plateau_wait" not in TrainConfig(schedule="cosine").result_settings()  # older fingerprints stay
    with pytest.raises(ValueError, match="plateau schedule is for --framework torch"):
        train(webcam_signer, tmp_path / "keras", quick(reference(), schedule="plateau"), "keras")
    assert not (tmp_path / "keras").exists()  # refused before the run folder is touched


@pytest.mark.slow
@pytest.mark.parametrize("slow_epochs", [100, 4], ids=["slow-throughout", "slow-for-4-epochs"])
def test_a_capped_refit_compresses_its_plan_to_end_with_its_decay_inside_its_cap(webcam_signer, tmp_path, monkeypatch,
                                                                                 slow_epochs):  # fmt: skip
    """Issue 14 (the WLASL300 job within the hour): a refit replays the epochs validation chose on more clips, and
    had no cap, so a machine slowing down in it took the job past the hour. With a time cap it is now capped in
    proportion to its clips, and when the rest of its plan no longer fits, the rest is compressed into the epochs
    that do: it ends inside its cap, with the plan's decay (the last epoch at the plan's last rate, 1%). A machine
    that speeds up again gets the plan's pace back (the refit trains about as many epochs as planned)."""
    from signrec.presets import best
    from signrec.training import lightning as lit

    # better up to epoch 12, worse for 3 (the decay starts after epoch 15, for 8 epochs), better in the decay
    monkeypatch.setattr(lit.LitClassifier, "validation_step",
                        _validation_losses(lambda e: 1.0 if 12 <= e < 15 else 1 / (e + 1)))  # fmt: skip
    # the validated model's epochs short; the refit's first `slow_epochs` about 2 s, most of it this sleep
    monkeypatch.setattr(lit.LitClassifier, "on_train_epoch_start",
                        lambda self: time.sleep(1.5 if self.trainer.limit_val_batches == 0
                                                and self.current_epoch < slow_epochs else 0), raising=False)  # fmt: skip
    logged = []
    config = quick(best(), max_epochs=100, threads=1, warmup_epochs=1, plateau_wait=3, refit=True, max_minutes=0.4)
    r = train(webcam_signer, tmp_path, config, log=logged.append)
    validated, refit = (read_csv_rows(tmp_path / "members" / f / "history.csv") for f in ("seed-0", "refit-seed-1"))
    plan = len(validated)  # 23 epochs, the last the best (fewer if a loaded machine made the validated cap start it)
    split = Split.load(tmp_path / "split.json")
    cap = 0.4 * (len(split.train) + len(split.val)) / len(split.train)
    assert any(f"(seed 1, {plan} epochs, within {cap:.1f} min)" in line for line in logged)
    rates, planned = [float(x["lr"]) for x in refit], [float(x["lr"]) for x in validated]
    compressed = next((i for i, (a, b) in enumerate(zip(rates, planned)) if a != pytest.approx(b)), len(rates))
    assert 1 < compressed < len(rates) < plan and sum(float(x["seconds"]) for x in refit) < cap * 60
    assert rates[-1] == pytest.approx(1e-5) and all(a >= b for a, b in itertools.pairwise(rates))  # its decay, whole
    assert all(any(rate == pytest.approx(x) for x in planned) for rate in rates)  # each at a rate of the plan
    stopped = json.loads((tmp_path / "members" / "refit-seed-1" / "run.json").read_text())["stopped"]
    assert stopped == (f"the validated run's {plan} epochs, compressed into {len(rates)} to end with its last rates "
                       f"within the time cap ({cap:.1f} min)")  # fmt: skip
    assert f"refit: the validated run's {plan} epochs, compressed" in r.stopped
    if slow_epochs < plan:  # compressed after epoch 2 (to about half the pace), back to the plan's pace in the decay
        decay = [x for x in planned if x < 1e-3 * 0.999]
        assert sum(any(rate == pytest.approx(x) for rate in rates) for x in decay) >= len(decay) - 1


def test_a_refit_learns_from_the_validation_clips_for_as_long_as_validation_chose(webcam_signer, tmp_path, monkeypatch):
    """Issue 14: validation decides how long to train, then a second model (another seed) trains on the training
    and validation clips together for exactly those epochs, with the same learning rates (the plateau's decay
    where validation put it), and the two answer together. Nothing the refit saw is used to judge it: the run's
    validation figures, calibration and `evaluate --split val` are the validated model's (validated.pt)."""
    from signrec.evaluate import evaluate_run
    from signrec.presets import best
    from signrec.training import lightning as lit
    from signrec.training.stop import Interrupted

    losses = [3.0, 2.0, 2.5, 2.6, 2.7, 1.0, 1.1]
    monkeypatch.setattr(lit.LitClassifier, "validation_step", _validation_losses(lambda e: losses[min(e, len(losses) - 1)]))
    training_step = lit.LitClassifier.training_step

    def stopped_in_the_refits_epoch_3(self, batch, batch_idx):
        if self.trainer.limit_val_batches == 0 and self.current_epoch == 2 and batch_idx == 0:
            os.kill(os.getpid(), signal.SIGTERM)
        return training_step(self, batch, batch_idx)

    monkeypatch.setattr(lit.LitClassifier, "training_step", stopped_in_the_refits_epoch_3)
    config = quick(best(), max_epochs=50, threads=1, warmup_epochs=1, plateau_wait=3, refit=True, max_minutes=60)
    with pytest.raises(Interrupted, match="the last whole epoch"):  # stopped in the refit: kept, and resumed below
        train(webcam_signer, tmp_path, config)
    monkeypatch.setattr(lit.LitClassifier, "training_step", training_step)
    r = train(webcam_signer, tmp_path, config)
    validated, refit = tmp_path / "members" / "seed-0", tmp_path / "members" / "refit-seed-1"
    seen = [read_csv_rows(f / "history.csv") for f in (validated, refit)]
    assert len(seen[0]) == 8 and len(seen[1]) == 6  # validation chose epoch 6 (decay from epoch 5, for 3 epochs)
    assert [float(x["lr"]) for x in seen[1]] == pytest.approx([float(x["lr"]) for x in seen[0][:6]])
    assert not any(x["val_loss"] for x in seen[1])  # nothing validated: the validation clips are training clips
    assert [int(x["epoch"]) for x in seen[1]] == list(range(1, 7))  # resumed after epoch 2, nothing trained twice
    split, twin = Split.load(tmp_path / "split.json"), Split.load(refit / "split.json")
    assert sorted(twin.train) == sorted(split.train + split.val) and not twin.val

    net, card = load_torch(tmp_path / "model.pt")
    assert card.model == "ensemble" and len(net.members) == 2 and card.training["validated"] == "validated.pt"
    assert [m["seed"] for m in card.training["members"]] == [0, 1] and card.training["members"][1]["refit"]
    alone = load_predictor(validated)
    assert card.calibration.pop("fitted_on") == "validated.pt"  # fitted without the refit, and it says so
    assert load_predictor(tmp_path / "validated.pt").card.calibration == card.calibration
    store = open_store(webcam_signer)
    val_clips = store.subset(split.val)
    val_acc = float((alone.predict_proba([store.read(c) for c in val_clips], calibrated=False).argmax(1)
                     == np.array([alone.labels.index(c.gloss) for c in val_clips])).mean())  # fmt: skip
    assert r.val_acc == pytest.approx(val_acc) and card.training["val_acc"] == pytest.approx(val_acc)
    ev = evaluate_run(tmp_path, split="val")
    assert ev.metrics.top1 == pytest.approx(val_acc) and any("validated.pt" in w for w in ev.warnings)
    whole = evaluate_run(tmp_path, split="all")  # the whole model on every clip: the validation clips were learnt
    assert whole.in_training == len(split.train) + len(split.val)
    # resumed with a member made differently (an ensemble interrupted under an earlier signrec): the error names
    # it, and --force replaces that member (not those made alike), as it would a whole run
    for run_json, changed in ((tmp_path / "run.json", {}), (refit / "run.json", {"fingerprint": {"id": "older"}})):
        run_json.write_text(json.dumps({**json.loads(run_json.read_text()), "status": "running", **changed}))
    with pytest.raises(RunConflict, match="refit-seed-1 holds a run made differently"):
        train(webcam_signer, tmp_path, config)
    again = train(webcam_signer, tmp_path, config, force=True)
    assert again.epochs == r.epochs and len(read_csv_rows(refit / "history.csv")) == 6
    assert json.loads((refit / "run.json").read_text())["fingerprint"]["id"] != "older"
    with pytest.raises(ValueError, match="refit"):
        train(webcam_signer, tmp_path / "keras", quick(reference(), refit=True), "keras")


def test_a_switch_that_the_data_drops_leaves_the_fingerprint_as_it_was(webcam_signer, data_dir, tmp_path):
    """The best recipe reads each hand's place in the frame only without a body; runs on data with one (here
    webcam keypoints) are the models they were, and keep their fingerprints, so their folders are reused."""
    from dataclasses import replace

    from signrec.presets import BEST_PREPROCESS, best
    from signrec.splits import make_split
    from signrec.store import import_keypoints
    from signrec.training.runner import fingerprint

    before = replace(best(), preprocess=replace(BEST_PREPROCESS, image_place=False))
    body = open_store(webcam_signer)
    split = make_split(body, "auto")
    assert fingerprint("torch", best(), body, split)["id"] == fingerprint("torch", before, body, split)["id"]
    import_keypoints(data_dir / "keypoints" / "wlasl300-hands", tmp_path / "hands", progress=False)
    hands = open_store(tmp_path / "hands")
    split = make_split(hands, "official")
    assert fingerprint("torch", best(), hands, split)["id"] != fingerprint("torch", before, hands, split)["id"]


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")  # a step outside a Trainer
def test_mixup_mixes_each_batch_and_its_loss_by_the_same_weight():
    """A mixup step: the batch mixed with itself reordered (`batching.mix`) and the two labels' losses weighted
    alike, by a weight and order drawn from (seed, step); without mixup the step is the plain loss."""
    import torch

    from signrec.batching import mix
    from signrec.models.convformer import Convformer, ConvformerConfig
    from signrec.training.config import TrainConfig
    from signrec.training.lightning import LitClassifier

    torch.manual_seed(0)
    net = Convformer(ConvformerConfig(num_classes=5, input_size=7, dim=8, heads=2)).eval()
    x, mask = torch.randn(6, 9, 7), torch.ones(6, 9, dtype=torch.bool)
    mask[2, 6:] = False
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    config = TrainConfig(mixup=0.4, seed=3, label_smoothing=0.1)
    with torch.no_grad():
        loss = LitClassifier(net, config).training_step((x, mask, y), 0)
        rng = np.random.default_rng((3, 0))  # step 0
        weight, order = rng.beta(0.4, 0.4), torch.from_numpy(rng.permutation(6))
        logits = net(*mix(x, mask, order, weight))
        ce = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
        torch.testing.assert_close(loss, weight * ce(logits, y) + (1 - weight) * ce(logits, y[order]))
        plain = LitClassifier(net, TrainConfig(label_smoothing=0.1)).training_step((x, mask, y), 0)
        torch.testing.assert_close(plain, ce(net(x, mask), y))
    assert not torch.isclose(loss, plain) and 0.01 < weight < 0.99
    assert "mixup" not in TrainConfig().result_settings() and config.result_settings()["mixup"] == 0.4
    with pytest.raises(ValueError, match="mixup must be 0"):
        TrainConfig(mixup=-1)


def test_a_refit_replays_up_to_the_kept_epoch_or_the_whole_schedule():
    from signrec.training.config import TrainConfig
    from signrec.training.runner import TrainResult, refit_plan

    plan = {"epochs": 40, "decay_start": 50, "decay_epochs": 25, "max_frames": 64}
    r = TrainResult(run="r", checkpoint="c", framework="torch", model="convformer", parameters=1, epochs=75,
                    best_epoch=40, seconds_per_epoch=1.0, seconds=75.0, val_acc=0.5, split="s", plan=plan)  # fmt: skip
    assert refit_plan(r, whole=False) == plan
    assert refit_plan(r, whole=True) == {**plan, "epochs": 75}  # through the decay to its end
    assert r.plan["epochs"] == 40  # the validated run's own record is unchanged
    assert "refit_whole" not in TrainConfig(refit=True).result_settings()  # earlier refits keep their fingerprints
    assert TrainConfig(refit=True, refit_whole=True).result_settings()["refit_whole"] is True


@pytest.mark.parametrize("model", ["convformer", "lstm", "bigru"])
def test_mixed_precision_trains_in_bfloat16_and_keeps_float32_weights(webcam_signer, tmp_path, monkeypatch, model):
    """precision bf16: the model computes in bfloat16 under autocast in training (faster on a CPU that computes it
    natively), while the weights, the checkpoint, validation and prediction stay float32; 32 computes in float32
    throughout. Every model trains so (the scratch LSTM's hand-written backward included)."""
    from dataclasses import replace

    import torch

    from signrec.training import runner

    seen, validated = [], []
    build = runner.build_model

    def spied(name, config):
        net = build(name, config)
        net.register_forward_hook(lambda m, args, out: (seen if m.training else validated).append(out.dtype))
        return net

    monkeypatch.setattr(runner, "build_model", spied)
    recipe = best() if model == "convformer" else replace(best(), model=model, model_options={})
    clip = np.load(webcam_signer / "hello" / "000.npy")
    for precision, dtype in (("bf16", torch.bfloat16), ("32", torch.float32)):
        seen.clear(), validated.clear()
        out = tmp_path / precision
        r = train(webcam_signer, out, quick(recipe, max_epochs=2, threads=1, precision=precision))
        assert seen and set(seen) == {dtype}, precision
        # validation in float32 either way: the accuracy a run records is the one evaluation computes
        assert validated and set(validated) == {torch.float32}
        store = open_store(webcam_signer)
        val = store.subset(Split.load(out / "split.json").val)
        predictor = load_predictor(r.run)
        evaluated = predictor.predict_proba([store.read(c) for c in val]).argmax(1)
        assert np.mean(evaluated == [predictor.labels.index(c.gloss) for c in val]) == pytest.approx(r.val_acc)
        saved = torch.load(out / "model.pt", map_location="cpu", weights_only=True)["state_dict"]
        assert {v.dtype for v in saved.values() if v.is_floating_point()} == {torch.float32}
        assert r.precision == precision and predictor.card.training["precision"] == precision
        probs = predictor.predict_proba([clip])
        assert probs.dtype == np.float32 and np.isfinite(probs).all() and abs(probs.sum() - 1) < 1e-5


def test_precision_auto_is_what_this_machine_trains_the_model_in_and_the_run_holds_it(webcam_signer, tmp_path,
                                                                                      monkeypatch):  # fmt: skip
    """"auto" resolves before a run's fingerprint: bf16 for the convformer on a CPU with bfloat16 instructions,
    else 32. A run made in float32 (before the setting existed, or on another machine) is reused where auto means
    32, and refused, not resumed in another arithmetic, where it means bf16."""
    from signrec.training import config as config_module
    from signrec.training.config import TrainConfig, resolve_precision

    for native, expected in ((True, "bf16"), (False, "32")):
        monkeypatch.setattr(config_module, "cpu_computes_bf16", lambda native=native: native)
        assert resolve_precision("auto", "convformer", accelerator=False) == expected
        assert resolve_precision("auto", "convformer", accelerator=True) == "32"  # beside a GPU: not measured there
        assert resolve_precision("auto", "lstm", accelerator=False) == "32"  # measured for the convformer only
        assert resolve_precision("bf16", "lstm", accelerator=False) == "bf16"
        assert resolve_precision("32", "convformer", accelerator=False) == "32"
    # runs made before the setting existed trained in float32: "32" leaves their fingerprints as they were
    assert "precision" not in TrainConfig().result_settings()
    assert best().config.precision == "auto" and reference().config.precision == "32"
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp16")
    made = train(webcam_signer, tmp_path, quick(best(), max_epochs=1, threads=1, precision="32"))
    monkeypatch.setattr(config_module, "cpu_computes_bf16", lambda: False)
    again = train(webcam_signer, tmp_path, quick(best(), max_epochs=1, threads=1))
    assert again.reused and again.precision == made.precision == "32"
    monkeypatch.setattr(config_module, "cpu_computes_bf16", lambda: True)
    with pytest.raises(RunConflict, match="precision"):
        train(webcam_signer, tmp_path, quick(best(), max_epochs=1, threads=1))


def test_the_keras_baseline_refuses_bfloat16(webcam_signer, tmp_path):
    with pytest.raises(ValueError, match="bf16 precision is for --framework torch"):
        train(webcam_signer, tmp_path, quick(reference(), max_epochs=1, precision="bf16"), framework="keras")
