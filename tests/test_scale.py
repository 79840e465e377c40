"""Scale-out on the engines people run: extraction on Dask (a LocalCluster, and a separately started scheduler with
two workers on 127.0.0.1), on real clips."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, link_tree
from signrec.cli import main
from signrec.extract import extract, read_manifest

# Short 288x192 wlasl12 clips (split, signer and fold come from wlasl12.csv beside the folder): 28, 29, 30 frames.
WLASL12_SHORT = ("time/58503.mp4", "drink/17724.mp4", "help/27215.mp4")
GOOD = 4  # the three above and afraid/01377 (22 frames)
BAD = {"time/dead.mp4": "not a readable video", "afraid/cut.mp4": "no frame could be decoded"}
TIMEOUT = 240  # seconds any one cluster run may take on a busy 2-core machine


def _env() -> dict[str, str]:
    """Environment for processes we start: this checkout's signrec first (workers import it)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}


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


@pytest.fixture
def dask_cluster(tmp_path):
    """`dask scheduler` and two `dask worker --nthreads 1` processes on 127.0.0.1, started here, stopped after."""
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
                procs.append(subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=log))
        from dask.distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
            yield address, client
    finally:
        _stop(procs)


@pytest.mark.slow
def test_a_separately_started_scheduler_and_two_workers(dask_cluster, video_tree, pool_run, tmp_path, capsys):
    address, client = dask_cluster
    out = tmp_path / "kp"
    assert main(["extract", str(video_tree), "--out", str(out), "--scheduler", address, "--no-progress"]) == 1
    printed = capsys.readouterr().out
    assert f"on a Dask cluster at {address} (2 workers, 2 threads)" in printed
    _same_store(out, pool_run)
    # each worker opened one Holistic and reused it for all its clips; this process opened none
    from signrec.extract import holistics_opened

    assert sorted(client.run(holistics_opened).values()) == [1, 1]
    assert holistics_opened() == 0
    assert not (out / "extract.log").exists()  # remote workers keep their own logs


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
