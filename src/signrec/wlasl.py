"""WLASL: the metadata, choosing glosses, fetching the clips that still exist, trimming, and the report.

Layout written under OUT (which `signrec extract OUT` takes directly):

    OUT/<gloss>/<video_id>.mp4   one clip per instance, trimmed to its frame range
    OUT/manifest.csv             per video_id: gloss, split, signer, URL, status (ok/missing/error), reason
    OUT/missing.txt              the video_ids not obtained, to request from the WLASL authors
    OUT/.downloads/              the source videos as fetched (one per URL; several instances can share one)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .download import DownloadError, FetchConfig, HostLimiter, Missing, Progress, check_video, download
from .io import atomic_write_text, gloss_folder, read_csv_rows, write_csv_atomic
from .video import FrameRange, VideoError, count_frames, iter_frames, probe, write_video

METADATA_URL = "https://raw.githubusercontent.com/dxli94/WLASL/master/start_kit/WLASL_v0.3.json"
REFERENCE_GLOSSES = ("book", "drink", "hello", "idea")
SPLITS = ("train", "val", "test")
MANIFEST_NAME = "manifest.csv"
MISSING_NAME = "missing.txt"
DOWNLOADS = ".downloads"
MANIFEST_FIELDS = [
    "id", "video_id", "gloss", "split", "signer_id", "frame_start", "frame_end", "trimmed", "status", "error",
    "path", "frames", "url", "source", "bbox", "fps",
]  # fmt: skip


# WLASL's official vocabularies: the first N glosses (nslt_N.json).
SUBSETS = (100, 300, 1000, 2000)


class MetadataError(ValueError):
    """A WLASL metadata file that cannot be used, or a selection it cannot satisfy."""


@dataclass(frozen=True)
class Instance:
    """One WLASL instance (a video of one sign)."""

    gloss: str
    video_id: str
    url: str
    split: str
    signer_id: str
    frame_start: int = 1
    frame_end: int = -1
    bbox: tuple[int, ...] | None = None
    fps: int | None = None
    source: str = ""

    @property
    def frame_range(self) -> FrameRange:
        return FrameRange(self.frame_start, self.frame_end)

    @property
    def folder(self) -> str:
        return gloss_folder(self.gloss)

    def clip_path(self, out: str | os.PathLike) -> Path:
        return Path(out) / self.folder / f"{self.video_id}.mp4"


def load_metadata(path: str | os.PathLike) -> dict[str, list[Instance]]:
    """`WLASL_v0.3.json` as {gloss: [instances]} in the file's order (most instances first)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MetadataError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MetadataError(f"{path}: not a JSON file ({e})") from None
    if not isinstance(raw, list):
        raise MetadataError(f"{path}: expected a list of {{gloss, instances}} entries (WLASL_v0.3.json format)")
    meta: dict[str, list[Instance]] = {}
    for n, entry in enumerate(raw):
        try:
            gloss = str(entry["gloss"])
            meta[gloss] = [
                Instance(
                    gloss=gloss,
                    video_id=str(i["video_id"]),
                    url=str(i.get("url", "")),
                    split=str(i.get("split", "")),
                    signer_id=str(i.get("signer_id", "")),
                    frame_start=int(i.get("frame_start", 1)),
                    frame_end=int(i.get("frame_end", -1)),
                    bbox=tuple(i["bbox"]) if i.get("bbox") else None,
                    fps=int(i["fps"]) if i.get("fps") else None,
                    source=str(i.get("source", "")),
                )
                for i in entry["instances"]
            ]
        except (KeyError, TypeError, ValueError) as e:
            raise MetadataError(f"{path}: entry {n} is not a WLASL gloss entry ({type(e).__name__}: {e})") from None
    return meta


def default_metadata(cache: str | os.PathLike | None = None, url: str = METADATA_URL,
                     config: FetchConfig | None = None) -> Path:  # fmt: skip
    """The WLASL metadata, downloaded once from the WLASL repository and cached (`$SIGNREC_CACHE`, else
    `~/.cache/signrec`)."""
    import urllib.request

    cache = Path(cache or os.environ.get("SIGNREC_CACHE") or Path.home() / ".cache" / "signrec")
    path = cache / "WLASL_v0.3.json"
    if path.exists():
        return path
    config = config or FetchConfig()
    cache.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".partial")
    request = urllib.request.Request(url, headers={"User-Agent": config.user_agent})
    try:
        with urllib.request.urlopen(request, timeout=config.timeout) as r, open(part, "wb") as f:
            shutil.copyfileobj(r, f)
        load_metadata(part)  # refuse to cache something that is not the metadata
    except MetadataError as e:
        part.unlink(missing_ok=True)
        raise MetadataError(f"{url}: not the WLASL metadata ({e})") from None
    except OSError as e:
        part.unlink(missing_ok=True)
        raise MetadataError(f"{url}: cannot download the WLASL metadata ({e}); pass --metadata PATH") from None
    os.replace(part, path)
    return path


def select(meta: dict[str, list[Instance]], glosses: Iterable[str] | None = None,
           top: int | None = None) -> list[Instance]:  # fmt: skip
    """Instances of the named glosses (default: the reference four), or of the first `top` glosses
    (WLASL100/300/1000/2000, as in the official nslt_N.json files)."""
    if top is not None:
        if top not in SUBSETS:
            raise MetadataError(f"--top must be one of WLASL's subsets {', '.join(map(str, SUBSETS))}, got {top}")
        names = list(meta)[:top]
    else:
        names = [g.strip() for g in (glosses or REFERENCE_GLOSSES) if g.strip()]
        unknown = [g for g in names if g not in meta]
        if unknown:
            import difflib

            hints = {g: difflib.get_close_matches(g, meta, n=3) for g in unknown}
            said = "; ".join(f"{g!r}" + (f" (did you mean {', '.join(h)}?)" if h else "") for g, h in hints.items())
            raise MetadataError(f"not WLASL glosses: {said}")
    folders: dict[str, str] = {}
    for g in names:
        if (other := folders.setdefault(gloss_folder(g), g)) != g:
            raise MetadataError(f"glosses {other!r} and {g!r} would share the folder {gloss_folder(g)!r}")
    return [i for g in dict.fromkeys(names) for i in meta[g]]


# --- the report ------------------------------------------------------------------------------------------


def report(instances: list[Instance], out: str | os.PathLike) -> list[dict]:
    """Per gloss and split: instances, on disk (a clip in OUT), missing (known dead), not yet fetched."""
    manifest = read_manifest(out)
    rows: dict[tuple[str, str], dict] = {}
    for inst in instances:
        for split in (inst.split, "all"):
            r = rows.setdefault((inst.gloss, split), {"gloss": inst.gloss, "split": split, "instances": 0,
                                                      "on_disk": 0, "missing": 0, "not_fetched": 0})  # fmt: skip
            r["instances"] += 1
            status = manifest.get(inst.video_id, {}).get("status")
            if inst.clip_path(out).exists():
                r["on_disk"] += 1
            elif status in ("missing", "error"):
                r["missing"] += 1
            else:
                r["not_fetched"] += 1
    order = {s: n for n, s in enumerate((*SPLITS, "all"))}
    glosses = list(dict.fromkeys(i.gloss for i in instances))
    return sorted(rows.values(), key=lambda r: (glosses.index(r["gloss"]), order.get(r["split"], 9), r["split"]))


def format_report(rows: list[dict]) -> str:
    """The report as an aligned text table, with totals per split."""
    totals: dict[str, dict] = {}
    for r in rows:
        t = totals.setdefault(r["split"], {"gloss": "TOTAL", "split": r["split"], "instances": 0, "on_disk": 0,
                                           "missing": 0, "not_fetched": 0})  # fmt: skip
        for k in ("instances", "on_disk", "missing", "not_fetched"):
            t[k] += r[k]
    head = ["gloss", "split", "instances", "on disk", "missing", "not fetched"]
    body = [[r["gloss"], r["split"], r["instances"], r["on_disk"], r["missing"], r["not_fetched"]]
            for r in [*rows, *totals.values()]]  # fmt: skip
    width = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=False)]
    lines = ["  ".join(str(x).ljust(w) if n < 2 else str(x).rjust(w) for n, (x, w) in enumerate(zip(row, width, strict=True)))
             for row in [head, *body]]  # fmt: skip
    return "\n".join(lines)


# --- fetching and trimming -------------------------------------------------------------------------------


def read_manifest(out: str | os.PathLike) -> dict[str, dict]:
    path = Path(out) / MANIFEST_NAME
    return {r["video_id"]: r for r in read_csv_rows(path)} if path.exists() else {}


@dataclass
class FetchSummary:
    ok: int = 0
    skipped: int = 0  # already on disk
    missing: int = 0
    errors: int = 0
    bytes: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def report(self) -> str:
        text = (f"{self.ok} clips written, {self.skipped} already on disk, {self.missing} missing (dead links), "
                f"{self.errors} errors; {self.bytes / 1e6:.1f} MB downloaded in {self.seconds:.0f} s")  # fmt: skip
        shown = self.problems[:10]
        more = len(self.problems) - len(shown)
        return "\n".join([text, *("  " + p for p in shown), *([f"  ... and {more} more"] if more > 0 else [])])


def _key(url: str) -> str:
    return hashlib.sha1(url.encode()).hexdigest()[:16]


def _cached_download(url: str, downloads: Path) -> Path | None:
    for p in downloads.glob(_key(url) + ".*"):
        if ".partial" not in p.name:
            return p
    return None


def write_clip(source: str | os.PathLike, inst: Instance, out: str | os.PathLike,
               whole: bool = True) -> tuple[Path, int, bool]:  # fmt: skip
    """Write `inst`'s clip to OUT/<gloss>/<video_id>.mp4 from `source`; returns (path, frames, trimmed).

    `whole`: `source` is the whole video, so the instance's frame range is cut out of it by streaming frames
    (never the whole video in memory). A clip whose range is the whole video is copied as it is when it is
    already an mp4, otherwise re-encoded.
    """
    dest = inst.clip_path(out)
    rng = inst.frame_range if whole else FrameRange()
    if rng.is_full and Path(source).suffix.lower() == ".mp4":
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.stem}.partial{dest.suffix}")
        shutil.copyfile(source, tmp)
        os.replace(tmp, dest)
        return dest, count_frames(dest), False
    fps = probe(source).fps or float(inst.fps or 25)
    frames = write_video(dest, iter_frames(source, rng), fps)
    return dest, frames, not rng.is_full


def _is_whole(source: Path, inst: Instance, clips_are: str) -> bool:
    """Whether a local file holds the whole source video (so the frame range must be cut) or only the sign."""
    if clips_are != "auto":
        return clips_are == "whole"
    if inst.frame_range.is_full:
        return True  # nothing to cut either way
    count = probe(source).frame_count
    if inst.frame_end != -1:
        return count >= inst.frame_end  # a trimmed clip is shorter than where the sign ends
    return count >= inst.frame_start  # to the end: a clip shorter than the start must be trimmed already


def _manifest_row(inst: Instance, **values: object) -> dict:
    row = {"id": inst.video_id, **asdict(inst)}
    row["bbox"] = " ".join(map(str, inst.bbox)) if inst.bbox else ""
    row.update(values)
    return row


def fetch(instances: list[Instance], out: str | os.PathLike, config: FetchConfig | None = None,
          local: str | os.PathLike | None = None, clips_are: str = "auto", retry_missing: bool = False,
          progress: bool = True) -> FetchSummary:  # fmt: skip
    """Fetch, check and trim every instance's clip into OUT, resumably; write the manifest and missing.txt.

    With `local`, clips come from a folder of `<video_id>.<ext>` files (for example the "WLASL processed"
    archive) instead of the network; `clips_are` says whether they hold the whole source video ("whole"),
    only the sign ("trimmed"), or "auto" (decided per clip from its length and the frame range).
    Instances whose clip is already in OUT are not fetched again, nor are links an earlier run found dead
    (unless `retry_missing`); errors are retried. Each source URL is downloaded once, however many instances
    it holds. The manifest is rewritten every few seconds, so a killed run loses little; clips and downloads
    are written under temporary names, so a killed run leaves nothing that looks finished.
    """
    from tqdm import tqdm

    config = config or FetchConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    downloads = out / DOWNLOADS
    old = read_manifest(out)
    rows: dict[str, dict] = {}
    summary = FetchSummary()
    t0 = time.perf_counter()
    todo: dict[str, list[Instance]] = {}  # source (URL or local file) -> instances
    local_files: dict[str, Path] = {}
    if local is not None:
        local = Path(local)
        if not local.is_dir():
            raise FileNotFoundError(f"{local}: no such folder")
        local_files = {p.stem: p for p in sorted(local.rglob("*")) if p.is_file() and not p.name.startswith(".")}
    for inst in instances:
        clip = inst.clip_path(out)
        previous = old.get(inst.video_id)
        if clip.exists() and (previous is None or previous.get("status") == "ok"):
            rows[inst.video_id] = previous or _manifest_row(inst, status="ok", path=_rel(clip, out))
            summary.skipped += 1
            continue
        if previous and previous.get("status") == "missing" and local is None and not retry_missing:
            rows[inst.video_id] = previous
            summary.missing += 1
            continue
        if local is not None:
            src = local_files.get(inst.video_id)
            if src is None:
                rows[inst.video_id] = _manifest_row(inst, status="missing", error=f"no {inst.video_id}.* in {local}")
                summary.missing += 1
                summary.problems.append(f"{inst.video_id} ({inst.gloss}): not in {local}")
                continue
            todo.setdefault(str(src), []).append(inst)
        elif not inst.url:
            rows[inst.video_id] = _manifest_row(inst, status="missing", error="no URL in the metadata")
            summary.missing += 1
        else:
            todo.setdefault(inst.url, []).append(inst)

    lock = threading.Lock()
    limiter = HostLimiter(config.per_host)
    n_clips = sum(len(v) for v in todo.values())
    bar = tqdm(total=n_clips, unit="clip", desc="clips", disable=not progress, dynamic_ncols=True)
    byte_bar = Progress(on_bytes=lambda n: bar.set_postfix_str(f"{byte_bar.total / 1e6:.1f} MB", refresh=False))

    flushed = [time.monotonic()]

    def current_rows() -> list[dict]:
        return [rows.get(i.video_id) or old.get(i.video_id) or _manifest_row(i, status="") for i in instances]

    def record(inst: Instance, row: dict, problem: str | None = None) -> None:
        with lock:
            rows[inst.video_id] = row
            if row["status"] == "ok":
                summary.ok += 1
            elif row["status"] == "missing":
                summary.missing += 1
            else:
                summary.errors += 1
            if problem:
                summary.problems.append(problem)
            bar.update(1)
            if time.monotonic() - flushed[0] > 10:
                write_manifest(out, current_rows())
                flushed[0] = time.monotonic()

    def work(source: str, group: list[Instance]) -> None:
        try:
            if local is not None:
                path = Path(source)
                check_video(path)
            else:
                path = _cached_download(source, downloads)
                if path is None:
                    with limiter.hold(source):
                        path = download(source, downloads / _key(source), config, byte_bar)
        except DownloadError as e:
            status = "missing" if isinstance(e, Missing) else "error"
            for inst in group:
                record(inst, _manifest_row(inst, status=status, error=str(e)), f"{inst.video_id} ({inst.gloss}): {e}")
            return
        for inst in group:
            try:
                whole = True if local is None else _is_whole(path, inst, clips_are)
                clip, frames, _trimmed = write_clip(path, inst, out, whole)
                record(inst, _manifest_row(inst, status="ok", path=_rel(clip, out), frames=frames,
                                           trimmed="true"))  # fmt: skip
            except (VideoError, OSError, ValueError) as e:
                msg = f"{source}: {e}" if str(source) not in str(e) else str(e)
                record(inst, _manifest_row(inst, status="error", error=msg), f"{inst.video_id} ({inst.gloss}): {msg}")

    try:
        with ThreadPoolExecutor(max_workers=max(1, config.jobs)) as pool:
            futures = [pool.submit(work, src, group) for src, group in todo.items()]
            for f in as_completed(futures):
                f.result()
    finally:
        bar.close()
        summary.bytes = byte_bar.total
        summary.seconds = time.perf_counter() - t0
        write_manifest(out, current_rows())
    return summary


def _rel(path: Path, out: Path) -> str:
    return path.relative_to(out).as_posix()


def write_manifest(out: str | os.PathLike, rows: list[dict]) -> None:
    """manifest.csv (every selected instance) and missing.txt (the video_ids not obtained), atomically."""
    out = Path(out)
    write_csv_atomic(out / MANIFEST_NAME, rows, MANIFEST_FIELDS)
    missing = sorted({r["video_id"] for r in rows if r.get("status") in ("missing", "error")})
    atomic_write_text(out / MISSING_NAME, "".join(f"{v}\n" for v in missing))
