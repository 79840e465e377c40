"""Training speed at the thread count signrec chooses by default against each fixed choice, on an idle machine
and with another busy process beside it.

    python benchmarks/bench_threads.py [--epochs 4] [--reference-epochs 20] [--repeat 2]

For the reference recipe (webcam keypoints, 5 signers) and the best recipe (WLASL100 hands-only keypoints), each
thread setting trains the same epochs in turn (default = measured at the start, 1 thread, all cores). Two
figures per setting: the whole run's wall time over its epochs (the thread measurement, starting a data worker
and the first epoch's compiling included: what a user waits for) and the median epoch after the first (the
steady state). "Busy" runs a second process that keeps one core busy with numpy work meanwhile, as keypoint
extraction or a second job would. The ratio is the whole-run figure against the fastest setting in the same
condition.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, markdown_table, require_data

from signrec.io import read_csv_rows
from signrec.presets import best, reference
from signrec.splits import filter_store
from signrec.store import import_keypoints, open_store
from signrec.training.runner import read_run, train

BURNER = "import numpy as np\nx = np.random.rand(400, 400)\nwhile True:\n    x = np.tanh(x @ x.T / 400)\n"


@contextmanager
def busy(on: bool):
    """Another process keeping one core busy (numpy on one thread), while the block runs."""
    if not on:
        yield
        return
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", BURNER], env=env)
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def seconds_per_epoch(store, recipe, threads: int | None, epochs: int, tmp: Path, tag: str) -> tuple[float, float, str]:
    """(whole run's seconds / epochs, median seconds of the epochs after the first, what the run chose)."""
    out = tmp / tag
    start = time.perf_counter()
    train(store, out, recipe.with_config(max_epochs=epochs, patience=epochs, threads=threads, progress=False))
    whole = (time.perf_counter() - start) / epochs
    rows = read_csv_rows(out / "history.csv")[1:]  # the first epoch compiles and warms caches
    chosen = read_run(out)["threads"]
    return whole, statistics.median(float(r["seconds"]) for r in rows), f"{chosen['threads']}t/{chosen['workers']}w"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=4, help="epochs per run of the best recipe")
    ap.add_argument("--reference-epochs", type=int, default=20, help="epochs per run of the reference recipe "
                    "(half a second each: more of them, so that start-up weighs as it does in a real run)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--work", default="work/bench-threads")
    args = ap.parse_args()
    data = require_data()
    work = Path(args.work)
    import_keypoints(data / "keypoints" / "wlasl300-hands", work / "wlasl300", progress=False)
    import_keypoints(data / "keypoints" / "webcam", work / "webcam", progress=False)
    jobs = {
        "reference (webcam, 5 signers)": (open_store(work / "webcam"), reference(), args.reference_epochs),
        "best (WLASL100 hands)": (filter_store(open_store(work / "wlasl300"), "wlasl100=1"), best(), args.epochs),
    }
    cores = os.cpu_count() or 1
    settings = {"default (measured)": None, "1 thread": 1, f"{cores} threads": cores}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for condition in ("idle", "busy"):
            for job, (store, recipe, epochs) in jobs.items():
                whole: dict[str, list[float]] = {k: [] for k in settings}
                steady: dict[str, list[float]] = {k: [] for k in settings}
                chosen: list[str] = []
                with busy(condition == "busy"):
                    for i in range(args.repeat):
                        for name, threads in settings.items():
                            w, e, c = seconds_per_epoch(store, recipe, threads, epochs, Path(tmp), f"{condition}{job[:4]}{name[:3]}{i}")
                            whole[name].append(w)
                            steady[name].append(e)
                            if threads is None:
                                chosen.append(c)
                fastest = min(statistics.median(v) for v in whole.values())
                for name in settings:
                    med = statistics.median(whole[name])
                    note = f" (chose {', '.join(chosen)})" if name.startswith("default") else ""
                    rows.append([condition, job, epochs, name + note, f"{med:.2f}", f"{statistics.median(steady[name]):.2f}",
                                 f"{med / fastest:.2f}"])  # fmt: skip
                    print(rows[-1], file=sys.stderr, flush=True)
    print(f"machine: {machine()}; {args.repeat} runs per setting, medians; t/w: threads/data workers chosen")
    print(markdown_table(["machine", "recipe", "epochs a run", "threads", "seconds per epoch, whole run",
                          "seconds per epoch after the first", "whole run vs fastest"], rows))  # fmt: skip

if __name__ == "__main__":
    main()
