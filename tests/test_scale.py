"""Scale-out on the engines people run: extraction on Dask (a LocalCluster, and a separately started scheduler with
two workers on 127.0.0.1), and training on two CPU processes with Lightning's DDP, on real clips and keypoints."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from distributed import WorkerPlugin

from conftest import REPO, link_tree
from signrec.cli import main
from signrec.extract import extract, read_manifest

# MediaPipe on real clips, servers, clusters or subprocesses: `make test-fast` leaves them out
pytestmark = pytest.mark.slow

# Short 288x192 wlasl12 clips (split, signer and fold come from wlasl12.csv beside the folder): 28, 29, 30 frames.
WLASL12_SHORT = ("time/58503.mp4", "drink/17724.mp4", "help/27215.mp4")
GOOD = 4  # the three above and afraid/01377 (22 frames)
BAD = {"time/dead.mp4": "not a readable video", "afraid/cut.mp4": "no frame could be decoded"}
TIMEOUT = 240  # seconds any one cluster run may take on a busy 2-core machine


def _env(**extra: str) -> dict[str, str]:
    """Environment for processes we start: this checkout's signrec first (workers import it), and the tests (a
    worker plugin defined here is unpickled there)."""
    path = [str(REPO / "src"), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path), **extra}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(procs: list[subprocess.Popen]) -> None:
    """Terminate processes we started (and their children), waiting a bounded time; kill what stays."""
    import psutil

    for p in procs:
        try:
            family = [psutil.Process(p.pid), *psutil.Process(p.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for q in family:
            try:
                q.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(family, timeout=20)
        for q in alive:
            q.kill()
        psutil.wait_procs(alive, timeout=10)
        p.wait(timeout=10)


@pytest.fixture(scope="module")
def video_tree(tmp_path_factory, data_dir, clips):
    """Four real clips in <gloss>/ folders with WLASL metadata beside them, plus two broken files."""
    root = tmp_path_factory.mktemp("videos") / "wlasl12"
    src = data_dir / "videos" / "wlasl12"
    link_tree(root, {rel: src / rel for rel in WLASL12_SHORT})
    link_tree(root, {"afraid/01377.mp4": clips / "01377.mp4"})
    (root.parent / "wlasl12.csv").symlink_to(data_dir / "videos" / "wlasl12.csv")
    (root / "time" / "dead.mp4").write_text("<html>gone</html>")
    (root / "afraid" / "cut.mp4").write_bytes((clips / "68012.mp4").read_bytes()[:30000])
    return root


@pytest.fixture(scope="module")
def pool_run(video_tree, tmp_path_factory):
    """The reference: the built-in process pool of two workers."""
    out = tmp_path_factory.mktemp("pool")
    summary = extract(video_tree, out, workers=2, progress=False)
    assert summary.done == GOOD and len(summary.failed) == len(BAD)
    return out


def _same_store(out: Path, reference: Path) -> None:
    """Byte-identical arrays and manifest, nothing else written."""
    arrays = sorted(p.relative_to(reference).as_posix() for p in reference.rglob("*.npy"))
    assert len(arrays) == GOOD
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npy")) == arrays
    for rel in arrays:
        assert (out / rel).read_bytes() == (reference / rel).read_bytes(), rel
    assert (out / "manifest.csv").read_bytes() == (reference / "manifest.csv").read_bytes()
    assert not [p for p in out.rglob("*") if "partial" in p.name]
    rows = {r["id"]: r for r in read_manifest(out)}
    assert rows["58503"]["split"] and rows["58503"]["signer"] and rows["58503"]["signer_fold"]  # carried along
    for rel, why in BAD.items():
        row = rows[Path(rel).stem]
        assert row["status"] == "failed" and why in row["error"]


@pytest.fixture(scope="module")
def local_run(video_tree, pool_run, tmp_path_factory):
    """`--scheduler local:2` with every way for this process to touch a video switched off: workers read them."""
    from signrec import extract as ex
    from signrec import video

    def refuse(*args, **kwargs):
        raise AssertionError("the client opened a video")

    out = tmp_path_factory.mktemp("dask-local")
    with pytest.MonkeyPatch.context() as mp:
        for module, name in ((ex, "probe"), (ex, "iter_rgb"), (ex, "extract_video"), (video, "probe"), (video, "_open")):
            mp.setattr(module, name, refuse)
        summary = extract(video_tree, out, scheduler="local:2", progress=False)
    return out, summary


def test_local_cluster_gives_the_pools_arrays_and_manifest(local_run, pool_run):
    out, summary = local_run
    assert summary.engine == "Dask LocalCluster (2 workers x 1 thread)"
    assert summary.done == GOOD and summary.skipped == 0
    assert sorted(Path(s).name for s in summary.failed) == ["cut.mp4", "dead.mp4"]  # recorded and skipped
    assert summary.frames == sum(int(r["frames"]) for r in read_manifest(pool_run) if r["status"] == "ok")
    _same_store(out, pool_run)
    assert "Created TensorFlow Lite" in (out / "extract.log").read_text()  # native logs went to the log


def test_rerun_does_only_what_is_missing(local_run, pool_run, video_tree, tmp_path):
    out = tmp_path / "kp"
    shutil.copytree(local_run[0], out)
    (out / "drink" / "17724.npy").unlink()  # lost
    kept = {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")}
    summary = extract(video_tree, out, scheduler="local:2", progress=False)
    assert (summary.done, summary.skipped, len(summary.failed)) == (1, GOOD - 1, len(BAD))  # failed ones: retried
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())  # the others untouched
    _same_store(out, pool_run)


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_nothing(video_tree, pool_run, tmp_path):
    """Kill one worker process of the LocalCluster once the first clip is stored: Dask runs its clips again."""
    import psutil

    out = tmp_path / "kp"
    cmd = [sys.executable, "-m", "signrec.cli", "extract", str(video_tree), "--out", str(out), "--scheduler",
           "local:2", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + TIMEOUT
        while time.time() < deadline and proc.poll() is None and not list(out.rglob("*.npy")):
            time.sleep(0.05)
        workers = [p for p in psutil.Process(proc.pid).children(recursive=True)
                   if "spawn_main" in " ".join(p.cmdline()) and "resource_tracker" not in " ".join(p.cmdline())]  # fmt: skip
        stored = len(list(out.rglob("*.npy")))
        assert len(workers) == 2 and 1 <= stored < GOOD, (len(workers), stored)  # in the middle of the run
        workers[0].kill()
        workers[0].wait(timeout=10)
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        _stop([proc])
    assert proc.returncode == 1, stderr  # 1: some clips failed (the broken files)
    assert f"clips: {GOOD} extracted" in stdout and f"{len(BAD)} failed" in stdout
    _same_store(out, pool_run)


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """`dask scheduler` and two `dask worker --nthreads 1` processes on 127.0.0.1, started here, stopped after.

    The scheduler gives up on a task after its worker died twice (Dask's default is four times)."""
    tmp_path = tmp_path_factory.mktemp("cluster")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "cluster-logs"
    logs.mkdir()
    dask = [sys.executable, "-m", "dask"]
    commands = {"scheduler": [*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]}
    for i in range(2):
        commands[f"worker{i}"] = [*dask, "worker", address, "--nthreads", "1", "--nworkers", "1", "--host", "127.0.0.1",
                                  "--no-dashboard", "--local-directory", str(tmp_path / f"w{i}")]  # fmt: skip
    procs = []
    try:
        for name, cmd in commands.items():
            with open(logs / f"{name}.log", "w") as log:  # the process keeps its own copy of the descriptor
                env = _env(DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="1")
                procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log))
        from dask.distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
            yield address, client
    finally:
        _stop(procs)


@pytest.mark.slow
def test_a_separately_started_scheduler_and_two_workers(dask_cluster, video_tree, pool_run, tmp_path, capsys,
                                                        monkeypatch):  # fmt: skip
    address, client = dask_cluster
    out = tmp_path / "kp"
    # This test's client is the process's default one. signrec must wait on its own client's loop: waiting on the
    # default client's loop (what Dask's as_completed does unless told) failed at random with "Event ... is bound
    # to a different event loop" when a clip was still running.
    import distributed.client

    def no_default_client(*args, **kwargs):
        raise AssertionError("signrec asked Dask for the default client instead of using its own")

    monkeypatch.setattr(distributed.client, "default_client", no_default_client)
    assert main(["extract", str(video_tree), "--out", str(out), "--scheduler", address, "--no-progress"]) == 1
    printed = capsys.readouterr().out
    assert f"on a Dask cluster at {address} (2 workers, 2 threads)" in printed
    _same_store(out, pool_run)
    # each worker opened one Holistic and reused it for all its clips; this process opened none
    from signrec.extract import holistics_opened

    assert sorted(client.run(holistics_opened).values()) == [1, 1]
    assert holistics_opened() == 0
    assert not (out / "extract.log").exists()  # remote workers keep their own logs


class CrashOn(WorkerPlugin):
    """A worker plugin that makes every worker process die (as in a native crash) when it extracts one clip."""

    name = "signrec-test-crash"

    def __init__(self, filename: str):
        self.filename = filename

    def setup(self, worker: object) -> None:
        from signrec import extract as ex

        real, filename = ex.extract_video, self.filename

        def extract_video(path, *args, **kwargs):
            if os.path.basename(path) == filename:
                os._exit(1)
            return real(path, *args, **kwargs)

        ex.extract_video = extract_video


@pytest.mark.slow
def test_a_clip_that_kills_its_worker_every_time_is_recorded_and_skipped(dask_cluster, clips, tmp_path):
    address, client = dask_cluster
    client.register_plugin(CrashOn("crash.mp4"), name=CrashOn.name)
    try:
        videos = link_tree(tmp_path / "videos", {"afraid/01377.mp4": clips / "01377.mp4",
                                                 "afraid/crash.mp4": clips / "01377.mp4"})  # fmt: skip
        summary = extract(videos, tmp_path / "kp", scheduler=address, progress=False)
    finally:
        client.unregister_worker_plugin(CrashOn.name)
        client.wait_for_workers(2, timeout=120)  # the workers it killed are back
    assert summary.done == 1 and list(summary.failed) == [str(videos / "afraid" / "crash.mp4")]
    row = {r["id"]: r for r in read_manifest(tmp_path / "kp")}["crash"]
    assert row["status"] == "failed" and "the Dask worker died each time it ran this clip" in row["error"]
    assert not (tmp_path / "kp" / "afraid" / "crash.npy").exists()


def test_an_unreachable_scheduler_is_a_clear_error_and_leaves_nothing(video_tree, tmp_path):
    import dask

    from signrec.cluster import ClusterError

    address = f"tcp://127.0.0.1:{_free_port()}"  # nothing listens there
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}), pytest.raises(ClusterError) as e:
        extract(video_tree, tmp_path / "kp", scheduler=address, progress=False)
    assert f"--scheduler {address}: no Dask scheduler answered within 2s" in str(e.value)
    assert "dask worker" in str(e.value) and isinstance(e.value, OSError)  # the CLI reports OSErrors, exit 2
    assert not (tmp_path / "kp").exists()


def test_scheduler_specs():
    from signrec.cluster import Scheduler, parse_scheduler

    assert parse_scheduler("local:3") == Scheduler(workers=3)
    assert parse_scheduler("local") == Scheduler()
    assert parse_scheduler("tcp://10.0.0.5:8786") == Scheduler(address="tcp://10.0.0.5:8786")
    assert parse_scheduler("tls://head.cluster:8786").address == "tls://head.cluster:8786"
    for bad, says in (("local:0", "local:N"), ("local:two", "local:N"), ("10.0.0.5:8786", "tcp://HOST"),
                      ("tcp://head", "tcp://HOST"), ("tcp://head:99999", "not a TCP port")):  # fmt: skip
        with pytest.raises(ValueError, match=says):
            parse_scheduler(bad)


# --- training on two processes ------------------------------------------------------------------------------

# Runs signrec's command line in every process of the distributed run (Lightning starts rank 1 as a copy of this
# script) and records, per process: the mixup each model trains with, the clips read in each epoch, and every file it
# writes below the run folder (Python's audit hooks see each open for writing, rename, removal and new folder).
PROBE = '''
import os, sys

TRACE, RUN = os.environ["PROBE_TRACE"], os.path.realpath(os.environ["PROBE_RUN"])
RANK = int(os.environ.get("LOCAL_RANK", "0"))
busy = False


def note(line):
    global busy
    busy = True
    try:
        with open(f"{TRACE}.{RANK}", "a") as f:
            f.write(line + "\\n")
    finally:
        busy = False


def below_run(path):
    try:
        return os.path.realpath(os.fsdecode(path)).startswith(RUN)
    except (TypeError, ValueError):
        return False


def audit(event, args):
    if busy:
        return
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)) and below_run(args[0]):
        mode, flags = args[1] or "", args[2] or 0
        if any(c in mode for c in "wax+") or flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            note(f"write {os.fsdecode(args[0])}")
    elif event in ("os.rename", "os.remove", "os.rmdir", "shutil.rmtree", "os.truncate") and below_run(args[0]):
        note(f"{event} {os.fsdecode(args[0])}")
    elif event == "os.mkdir" and below_run(args[0]) and not os.path.isdir(args[0]):
        note(f"mkdir {os.fsdecode(args[0])}")


if __name__ == "__main__":
    sys.addaudithook(audit)
    from signrec.training import lightning as tl

    read = tl.ClipDataset.__getitem__

    def traced(self, i):
        note(f"read {self.clips[i].path}")
        return read(self, i)

    tl.ClipDataset.__getitem__ = traced
    tl.LitClassifier.on_train_epoch_start = lambda self: note(f"epoch {self.current_epoch}")
    tl.LitClassifier.on_train_start = lambda self: note(f"trains with mixup {self.config.mixup:g}")
    from signrec.cli import main

    sys.exit(main())
'''
PROBE_NOTES = ("read ", "epoch ", "trains ")  # the probe's own lines; any other is a file written


@pytest.fixture(scope="module")
def webcam_signer(data_dir):
    return data_dir / "keypoints" / "webcam" / "akashsharma095"


@pytest.fixture(scope="module")
def ddp_run(webcam_signer, tmp_path_factory):
    """`signrec train --devices 2 --strategy ddp` on CPU (gloo), through the command line, probed.

    The split is the stratified one with one training clip and all validation clips but one per gloss moved to
    test, so that neither side divides evenly between two processes: 61 training clips (31 + 30, one repeated to
    even the shares) and 3 validation clips (2 + 1: a mean of the processes' means would weigh them 1/4, 1/4, 1/2)."""
    from signrec.splits import make_split
    from signrec.store import open_store

    tmp = tmp_path_factory.mktemp("ddp")
    store = open_store(webcam_signer)
    split = make_split(store, "stratified", 0)
    one_each = list({store.get(c).gloss: c for c in split.val}.values())
    split.test += [split.train.pop(), *(c for c in split.val if c not in one_each)]
    split.val = one_each
    split.how = "stratified (seed 0), one train clip and all but three val clips moved to test"
    split.save(tmp / "odd-split.json")
    run, trace = tmp / "run", tmp / "trace"
    (tmp / "probe.py").write_text(PROBE)
    epochs = 3
    cmd = [sys.executable, str(tmp / "probe.py"), "train", str(webcam_signer), "--out", str(run), "--devices", "2",
           "--strategy", "ddp", "--split", str(tmp / "odd-split.json"), "--max-epochs", str(epochs), "--patience",
           str(epochs), "--threads", "1", "--no-progress",
           # the plateau schedule under a time cap asks rank 0 every epoch whether its decay must start (a broadcast)
           "--schedule", "plateau", "--max-minutes", "30"]  # fmt: skip
    p = subprocess.run(cmd, env={**_env(), "PROBE_TRACE": str(trace), "PROBE_RUN": str(run)}, capture_output=True,
                       text=True, timeout=TIMEOUT, check=False)  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    return run, trace, split, epochs, p


def _epochs(trace_file: Path) -> dict[int, list[str]]:
    """Clips read per epoch by one process (reads before the first epoch are the thread probe's)."""
    epochs: dict[int, list[str]] = {}
    current = None
    for line in trace_file.read_text().splitlines():
        kind, _, what = line.partition(" ")
        if kind == "epoch":
            current = epochs.setdefault(int(what), [])
        elif kind == "read" and current is not None:
            current.append(what)
    return epochs


@pytest.mark.slow
def test_ddp_gives_each_clip_to_one_process_per_epoch(ddp_run):
    _, trace, split, epochs, _ = ddp_run
    ranks = [_epochs(Path(f"{trace}.{r}")) for r in (0, 1)]
    train, val = set(split.train), set(split.val)
    share = math.ceil(len(train) / 2)
    for e in range(epochs):
        reads = [Counter(r[e]) for r in ranks]
        got = [Counter({c: n for c, n in r.items() if c in train}) for r in reads]
        assert [sum(g.values()) for g in got] == [share, share]  # equal shares, as DDP needs
        both = got[0] + got[1]
        assert set(both) == train  # every training clip read in every epoch ...
        assert sum(both.values()) - len(train) == 2 * share - len(train) == 1  # ... once, but the one that evens out
        seen = [Counter({c: n for c, n in r.items() if c in val}) for r in reads]
        assert not set(seen[0]) & set(seen[1])  # validation: disjoint shares ...
        assert seen[0] + seen[1] == Counter(val)  # ... each clip exactly once
        assert set(reads[0]) | set(reads[1]) <= train | val  # never a test clip
    assert ranks[0][0] != ranks[0][1]  # reshuffled each epoch


@pytest.mark.slow
def test_ddp_only_rank_zero_writes(ddp_run):
    run, trace, _, epochs, p = ddp_run
    rank0 = Path(f"{trace}.0").read_text().splitlines()
    rank1 = Path(f"{trace}.1").read_text().splitlines()
    written0 = [line for line in rank0 if not line.startswith(PROBE_NOTES)]
    assert any(line.endswith("history.csv") for line in written0)  # the probe sees what rank 0 writes ...
    assert any("run.json" in line for line in written0) and any("model.pt" in line for line in written0)
    assert [line for line in rank1 if not line.startswith(PROBE_NOTES)] == []  # ... and rank 1 writes nothing
    assert p.stdout.count("torch/lstm:") == 1  # one result line: rank 1 left quietly
    from signrec.io import read_csv_rows

    assert [int(r["epoch"]) for r in read_csv_rows(run / "history.csv")] == list(range(1, epochs + 1))
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "finished"
    card = record["card"]["training"]
    assert (card["world_size"], card["devices"], card["strategy"]) == (2, 2, "ddp")
    assert card["threads"]["threads"] == 1


@pytest.mark.slow
def test_ddp_validation_figures_are_the_whole_split_and_the_run_evaluates(ddp_run, webcam_signer, tmp_path, capsys):
    """The recorded val loss/accuracy of the best epoch are those a single process computes with the saved model
    on the whole validation split, not a mean of the two processes' means (which differ here: 2 and 1 clips)."""
    from signrec.io import read_csv_rows
    from signrec.predict import load_predictor
    from signrec.store import open_store

    run, _, split, _, _ = ddp_run
    predictor = load_predictor(run)
    store = open_store(webcam_signer)
    val = store.subset(split.val)
    probs = predictor.predict_proba([store.read(c) for c in val], calibrated=False)  # what validation saw
    y = np.array([predictor.labels.index(c.gloss) for c in val])
    right = probs.argmax(1) == y
    nll = -np.log(probs[np.arange(len(y)), y])
    best = predictor.card.training["best_epoch"]
    row = next(r for r in read_csv_rows(run / "history.csv") if int(r["epoch"]) == best)
    assert float(row["val_acc"]) == pytest.approx(right.mean(), abs=1e-6)
    assert float(row["val_loss"]) == pytest.approx(nll.mean(), abs=2e-5)
    shares = [nll[r::2].mean() for r in (0, 1)]  # what averaging the processes' own means would have recorded
    assert abs(np.mean(shares) - nll.mean()) > 1e-4, "this split cannot tell the two apart"
    assert main(["evaluate", str(run), "--out", str(tmp_path / "eval")]) == 0
    assert "top-1" in capsys.readouterr().out and (tmp_path / "eval" / "report.md").exists()


@pytest.mark.slow
def test_run_passes_devices_through_and_launches_each_torch_model(data_dir, tmp_path):
    """`signrec run --devices 2 --strategy ddp`: Lightning starts a second process for each PyTorch model in turn
    (the second one only starts if the first launch was wound up); the Keras baseline trains in one process. Every
    process trains the best model as rank 0 chose it (a few clips a sign: mixup by default)."""
    out, trace = tmp_path / "run", tmp_path / "trace"
    (tmp_path / "probe.py").write_text(PROBE)
    cmd = [sys.executable, str(tmp_path / "probe.py"), "run", "--keypoints", str(data_dir / "keypoints" / "wlasl-a"), "--models",
           "reference-torch,best", "--max-epochs", "1", "--devices", "2", "--strategy", "ddp", "--threads", "1",
           "--no-progress", "--out", str(out)]  # fmt: skip
    p = subprocess.run(cmd, env={**_env(), "PROBE_TRACE": str(trace), "PROBE_RUN": str(out)}, capture_output=True,
                       text=True, timeout=TIMEOUT, check=False)  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.count("| reference-torch |") == 1 and p.stdout.count("| best |") == 1  # rank 0 reported once
    for model in ("reference-torch", "best"):
        card = json.loads((out / "runs" / model / "run.json").read_text())["card"]["training"]
        assert (card["world_size"], card["strategy"]) == (2, "ddp"), model
    epochs = [line for line in Path(f"{trace}.1").read_text().splitlines() if line.startswith("epoch")]
    assert len(epochs) == 2  # a rank-1 process trained one epoch of each model ...
    settings = [[line for line in Path(f"{trace}.{r}").read_text().splitlines() if line.startswith("trains ")]
                for r in (0, 1)]  # fmt: skip
    assert settings[0] == settings[1] == ["trains with mixup 0", "trains with mixup 0.4"]  # ... as rank 0 did
    assert [line for line in Path(f"{trace}.1").read_text().splitlines()
            if not line.startswith(PROBE_NOTES)] == []  # ... and wrote nothing  # fmt: skip
    assert (out / "report.md").exists() and (out / "runs" / "best" / "eval-wlasl-a-test").is_dir()
