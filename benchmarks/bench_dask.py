"""Extraction on Dask against the built-in pool and the plain loop, and what WLASL2000 would take on a cluster.

    python benchmarks/bench_dask.py [--clips 24] [--repeat 3] [--workers 2]

Side by side in one run, on the same real wlasl12 clips, each repeat running the three in turn so that they see
the same machine:

- the plain one-process loop (the tutorial's: read, convert, Holistic, row), as in bench_extract.py;
- `signrec extract` on its built-in pool of `--workers` processes;
- `signrec extract --scheduler local:N`, a Dask LocalCluster of N single-threaded workers.

Times include each engine's start-up (processes, imports, Holistic's model load), as a user waits for it. Each
method is measured twice: wall-clock frames/s, and CPU-seconds per frame (user + system time of this process and
of every worker process it started, from getrusage), which a machine shared with other jobs disturbs far less
than wall time. Then the per-clip cost of Dask itself: round trips of no-op tasks on a LocalCluster, and the extra
CPU time per clip against the pool. Last, the projection of WLASL2000 extraction (about 1.3 million frames,
21,083 clips) on 8, 64 and 512 cores from the measured per-frame cost, with its arithmetic. Prints Markdown.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_extract import pick_clips, plain_loop
from common import machine, markdown_table, require_data

from signrec.extract import extract

WLASL2000_FRAMES = 1_300_000  # the figure: about 21,000 clips of 60 frames
WLASL2000_CLIPS = 21_083  # instances in WLASL_v0.3.json
CORES_PER_WORKER = 1  # one single-threaded worker process per core, as the built-in pool runs
PROJECT_CORES = (8, 64, 512)


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its children that have ended (pool and cluster workers)."""
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def median_range(values: list[float], fmt: str = "{:.1f}") -> str:
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def dask_round_trips(workers: int, tasks: int = 400, one_by_one: int = 40) -> tuple[float, float, float, float]:
    """(ms per no-op task when `tasks` are submitted at once, ms per round trip one task at a time, seconds and
    CPU-seconds to start a LocalCluster of `workers` and close it again)."""
    from dask.distributed import Client, LocalCluster

    c0, t0 = cpu_seconds(), time.perf_counter()
    with LocalCluster(n_workers=workers, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0") as cluster, \
            Client(cluster) as client:  # fmt: skip
        client.gather(client.map(int, range(workers * 4), pure=False))  # every worker up and answering
    start_s, start_cpu = time.perf_counter() - t0, cpu_seconds() - c0
    with LocalCluster(n_workers=workers, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0") as cluster, \
            Client(cluster) as client:  # fmt: skip
        client.gather(client.map(int, range(workers * 4), pure=False))  # warm-up
        t = time.perf_counter()
        client.gather(client.map(int, range(tasks), pure=False))
        batch = (time.perf_counter() - t) / tasks
        trips = []
        for i in range(one_by_one):
            t = time.perf_counter()
            client.submit(int, i, pure=False).result()
            trips.append(time.perf_counter() - t)
    return batch * 1e3, statistics.median(trips) * 1e3, start_s, start_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="pool processes = LocalCluster workers")
    args = ap.parse_args()
    data = require_data()
    clips = pick_clips(data, args.clips)
    n = args.workers
    names = ["plain loop (1 process)", f"built-in pool ({n} processes)", f"Dask LocalCluster (--scheduler local:{n})"]
    fps: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}  # CPU-seconds per frame
    loads = [load()]
    with tempfile.TemporaryDirectory() as tmp:
        videos = Path(tmp) / "videos"
        for c in clips:
            (videos / c.parent.name).mkdir(parents=True, exist_ok=True)
            (videos / c.parent.name / c.name).symlink_to(c)
        # warm-up: model files, decoders and the Python modules of every engine in the page cache
        plain_loop(clips[:1])
        extract(videos, Path(tmp) / "warm-pool", workers=n, progress=False, min_person=0)
        extract(videos, Path(tmp) / "warm-dask", scheduler=f"local:{n}", progress=False, min_person=0)
        frames = None
        for r in range(args.repeat):
            c0 = cpu_seconds()
            f, s, _ = plain_loop(clips)
            frames = frames or f
            assert f == frames, (f, frames)
            runs = {names[0]: (s, cpu_seconds() - c0)}
            for name, kw in ((names[1], {"workers": n}), (names[2], {"scheduler": f"local:{n}"})):
                c0 = cpu_seconds()
                summary = extract(videos, Path(tmp) / f"{r}-{len(runs)}", progress=False, min_person=0, **kw)
                assert summary.frames == frames and summary.done == len(clips), (name, summary.report())
                runs[name] = (summary.seconds, cpu_seconds() - c0)  # the engine is closed: its workers counted
            for name, (s, c) in runs.items():
                fps[name].append(frames / s)
                cpu[name].append(c / frames)
            loads.append(load())
            print(f"repeat {r + 1}: " + ", ".join(f"{k}: {frames / s:.1f} frames/s, {c / frames * 1e3:.1f} CPU-ms/frame"
                                                  for k, (s, c) in runs.items())
                  + f"; load {loads[-1]}", file=sys.stderr, flush=True)  # fmt: skip
    batch_ms, trip_ms, start_s, start_cpu = dask_round_trips(n)

    pool, dask = names[1], names[2]
    paired = lambda m, k: [x / p for x, p in zip(m[k], m[pool])]  # ratios within the same repeat
    rows = [[k, frames, median_range(fps[k]), median_range(paired(fps, k), "{:.3f}"),
             median_range([c * 1e3 for c in cpu[k]]), median_range(paired(cpu, k), "{:.3f}")] for k in names]  # fmt: skip
    print(f"machine: {machine()}; {len(clips)} wlasl12 clips, {frames} frames; {args.repeat} repeats, median "
          f"(range); load average (1/5/15 min) before and after each repeat: {', '.join(loads)}\n")  # fmt: skip
    print(markdown_table(["method", "frames", "frames/s (wall)", "throughput vs pool", "CPU-ms per frame",
                          "CPU vs pool"], rows))  # fmt: skip
    extra = [(d - p) * frames for d, p in zip(cpu[dask], cpu[pool])]  # CPU-seconds Dask used beyond the pool
    print(f"\nDask against the pool: {median_range(paired(fps, dask), '{:.3f}')} of its wall-clock throughput, "
          f"{median_range(paired(cpu, dask), '{:.3f}')} of its CPU time per frame: "
          f"{median_range(extra, '{:.1f}')} CPU-seconds more for the {len(clips)} clips.")  # fmt: skip
    print(f"Where that goes: starting and closing a LocalCluster of {n} (scheduler, nannies, workers importing "
          f"Dask; no work) takes {start_s:.1f} s and {start_cpu:.1f} CPU-seconds, once per run; per clip, a no-op task "
          f"costs {batch_ms:.2f} ms when tasks are submitted together (as signrec does), {trip_ms:.2f} ms for one round "
          f"trip alone; what remains, {median_range([(e - start_cpu) / len(clips) * 1e3 for e in extra], '{:.0f}')} "
          f"CPU-ms per clip, is shipping the keypoints back and Dask's bookkeeping.")  # fmt: skip

    # Projection: CPU-seconds per frame of the pool's workers, spread over the cores (one single-threaded worker
    # per core keeps every core busy), plus Dask's per-clip cost; its start-up is paid once per worker, in parallel.
    per_frame = statistics.median(cpu[pool])
    per_clip = WLASL2000_FRAMES / WLASL2000_CLIPS  # frames
    k = 1 + batch_ms / 1e3 / (per_frame * per_clip)
    print(f"\nWLASL2000 projection. Per-frame cost c = {per_frame:.4f} CPU-seconds (the built-in pool's workers on "
          f"this machine, median, start-up included). Dask's per-clip cost against a clip of {per_clip:.0f} frames "
          f"(= {WLASL2000_FRAMES:,} / {WLASL2000_CLIPS:,}): k = 1 + {batch_ms / 1e3:.4f} / ({per_frame:.4f} x "
          f"{per_clip:.0f}) = {k:.4f}. T(C) = {WLASL2000_FRAMES:,} frames x c x k / C, one single-threaded worker "
          f"per core. The scheduler hands out one task per {batch_ms:.2f} ms, {1e3 / batch_ms:.0f} clips/s; "
          f"{max(PROJECT_CORES)} cores finish {max(PROJECT_CORES) / (per_frame * per_clip):.0f} clips/s, so it keeps "
          f"up. The client receives {WLASL2000_FRAMES * 1662 * 4 / 1e9:.1f} GB of float32 keypoints in all.\n")  # fmt: skip
    proj = []
    for c in PROJECT_CORES:
        t = WLASL2000_FRAMES * per_frame * k / c
        proj.append([c, c // CORES_PER_WORKER, f"{WLASL2000_FRAMES:,} x {per_frame:.4f} x {k:.4f} / {c} = {t:,.0f}",
                     f"{t / 3600:.2f} h" if t >= 3600 else f"{t / 60:.0f} min"])  # fmt: skip
    print(markdown_table(["cores", "workers", "arithmetic (s)", "WLASL2000"], proj))


if __name__ == "__main__":
    main()
