"""The `signrec` command: parses arguments, checks paths and choices, calls one library function per subcommand,
prints the result.

Every path and choice is checked here, before any heavy import (PyTorch, MediaPipe, Keras) or any work, so a
mistake costs a second and leaves nothing behind: exit status 2 and a message that names it. Ctrl-C exits with
130 and SIGTERM with 143, after saying what was kept and how to resume.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from .training.config import (
    MIXUP_ALPHA,
    MIXUP_CAPPED_MAX_CLIPS,
    MIXUP_LARGE_SET_MINUTES,
    MIXUP_MAX_CLIPS_A_SIGN,
    PRECISIONS,
    REFIT_LARGE_SET_MINUTES,
    SMALL_SET_ENSEMBLE,
    SMALL_SET_MAX_CLIPS,
    SMALL_SET_MINUTES,
)
from .training.stop import Interrupted, SecondaryRank

COMMANDS: dict[str, Callable[[argparse.ArgumentParser], None]] = {}
MODELS = ("lstm", "convformer", "bigru")  # the registry's built-in names (a test keeps them in step)
RECIPES = ("reference", "best")
RUN_MODELS = ("reference-torch", "reference-keras", "best")
TOP = (100, 300, 1000, 2000)


class UsageError(ValueError):
    """A wrong path or choice on the command line."""


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Help that shows each option's default and keeps the examples' line breaks. An option whose default is None
    says what None means in its own help (the recipe's value, the model's threshold), so None is not shown."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None and "%(default)" not in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action) or ""


def command(name: str, help: str, example: str) -> Callable:
    """Register a subcommand: `fn(parser)` adds its arguments and sets `func`."""

    def wrap(fn: Callable[[argparse.ArgumentParser], None]) -> Callable:
        fn.help, fn.example = help, example  # type: ignore[attr-defined]
        COMMANDS[name] = fn
        return fn

    return wrap


# --- checks that run before anything heavy ----------------------------------------------------------------------


def existing(path: str | None, what: str, kind: str = "any") -> Path | None:
    """`path` as a Path; an error naming it when it does not exist or is not a file/folder as `kind` says."""
    if path is None:
        return None
    p = Path(path)
    if not p.exists():
        raise UsageError(f"{what} {path}: no such {'folder' if kind == 'dir' else 'file' if kind == 'file' else 'file or folder'}")
    if kind == "dir" and not p.is_dir():
        raise UsageError(f"{what} {path}: is a file, expected a folder")
    if kind == "file" and not p.is_file():
        raise UsageError(f"{what} {path}: is a folder, expected a file")
    return p


def output_folder(path: str, what: str = "--out") -> Path:
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{what} {path}: is a file, expected a folder (it is created if missing)")
    return p


def checkpoint(path: str, torch_only: bool = False) -> Path:
    """A run folder or checkpoint file, checked without loading it."""
    from .checkpoint import CheckpointError, resolve

    try:
        p = resolve(path)
    except CheckpointError as e:
        raise UsageError(str(e)) from None
    if torch_only and p.suffix != ".pt":
        raise UsageError(f"{p}: ONNX export is for PyTorch checkpoints (model.pt); Keras models stay .keras")
    return p


def split_spec(spec: str) -> str:
    from .splits import check_spec

    try:
        check_spec(spec)
    except (ValueError, FileNotFoundError) as e:
        raise UsageError(str(e)) from None
    return spec


def scheduler(spec: str | None, workers: int | None = None) -> None:
    """`--scheduler` checked for its form (not its reachability) without importing Dask."""
    if spec is None:
        return
    from .cluster import ClusterError, parse_scheduler, require_dask

    try:
        parse_scheduler(spec)
        require_dask()
    except (ValueError, ClusterError) as e:
        raise UsageError(str(e)) from None
    if workers is not None:
        raise UsageError(f"--workers sizes the built-in process pool; with --scheduler {spec} the cluster decides "
                         f"(local:N starts N workers)")  # fmt: skip


def aliases(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        for pair in item.split(","):
            old, sep, new = pair.partition("=")
            if not sep or not old.strip() or not new.strip():
                raise UsageError(f"--alias {pair!r}: expected SOURCE=GLOSS, e.g. thankyou=thanks")
            out[old.strip()] = new.strip()
    return out


def positive(kind: type) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


# --- commands -------------------------------------------------------------------------------------------------


@command(
    "data",
    "get WLASL clips (choose glosses, download what still exists, trim, keep the splits) or import keypoints",
    "signrec data wlasl --glosses book,drink,hello,idea --out videos/\n"
    "  signrec data wlasl --top 100 --out wlasl100/ --jobs 8\n"
    "  signrec data wlasl --from WLASL2000/ --glosses book,drink --out videos/   (local clips, no network)\n"
    "  signrec data import MP_Data/ --out keypoints/                           (the tutorial's folders)\n"
    "  signrec data import ../shared/data/keypoints/wlasl300-hands --out kp/wlasl300   (index.csv columns kept)",
)
def _data(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="{wlasl,import}", required=True)
    w = sub.add_parser("wlasl", formatter_class=Formatter,
                       help="WLASL clips: report, download, trim, lay out as OUT/<gloss>/<video_id>.mp4",
                       description="Prints per gloss and split how many instances exist, are on disk and are "
                       "missing; then fetches what is missing (unless --report-only) and prints it again.",
                       epilog="example:\n  signrec data wlasl --glosses book,drink --out videos/")  # fmt: skip
    w.add_argument("--metadata", help="WLASL_v0.3.json (default: downloaded once from the WLASL repository)")
    which = w.add_mutually_exclusive_group()
    which.add_argument("--glosses", help="comma-separated glosses (default: book,drink,hello,idea)")
    which.add_argument("--top", type=int, choices=TOP, help="the first N glosses: WLASL100, 300, 1000 or 2000")
    w.add_argument("--out", required=True, help="output folder: OUT/<gloss>/<video_id>.mp4 + manifest.csv")
    w.add_argument("--from", dest="local", help="take clips from this folder of <video_id>.mp4 instead of the web")
    w.add_argument("--clips-are", choices=["auto", "whole", "trimmed"], default="auto",
                   help="with --from: whether the clips hold the whole source video or only the sign")
    w.add_argument("--report-only", action="store_true", help="print the report, fetch nothing")
    w.add_argument("--retry-missing", action="store_true", help="try again links an earlier run found dead")
    w.add_argument("--jobs", type=int, default=4, help="downloads at a time")
    w.add_argument("--per-host", type=int, default=2, help="downloads at a time from one site")
    w.add_argument("--timeout", type=float, default=30.0, help="seconds without data before a try fails")
    w.add_argument("--retries", type=int, default=3, help="further tries after a transient failure")
    w.add_argument("--max-mb", type=float, default=1024, help="refuse downloads larger than this (MB)")
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    i = sub.add_parser("import", formatter_class=Formatter,
                       help="keypoints people already have into a signrec keypoint store",
                       description="Imports MP_Data/<action>/<seq>/<frame>.npy folders, <gloss>/<id>.npy arrays of "
                       "1662, 258 (pose+hands) or 126 (hands) values (float32 or float16), and pose-format .pose "
                       "files, keeping only the parts the source has and the columns of an index.csv/manifest.csv "
                       "beside them (gloss, signer, split, ...). Importing again adds only what is new.",
                       epilog="examples:\n  signrec data import MP_Data/ --out keypoints/\n"
                       "  signrec data import webcam/ --out kp/ --group-as signer\n"
                       "  signrec data import gislr/ --out kp/ --alias thankyou=thanks")  # fmt: skip
    i.add_argument("src", help="folder of keypoints")
    i.add_argument("--out", required=True, help="the keypoint store to create or add to")
    i.add_argument("--group-as", default="group",
                   help="manifest column for the folders above the gloss folders (signer: they name the signer)")
    i.add_argument("--index", help="CSV describing the files (default: SRC/index.csv, SRC/manifest.csv or SRC.csv)")
    i.add_argument("--alias", action="append", help="rename glosses, SOURCE=GLOSS (repeat or comma-separate)")
    i.add_argument("--dtype", choices=["auto", "float32", "float16"], default="auto",
                   help="stored precision (auto: float16 when the source is float16)")
    i.add_argument("--no-progress", action="store_true", help="no progress bar")

    def run(args: argparse.Namespace) -> int:
        if args.data_command == "import":
            existing(args.src, "SRC", "dir")
            existing(args.index, "--index", "file")
            output_folder(args.out)
            names = aliases(args.alias)
            from .store import import_keypoints

            summary = import_keypoints(args.src, args.out, group_as=args.group_as, dtype=args.dtype, aliases=names,
                                       index=args.index, progress=not args.no_progress)  # fmt: skip
            print(summary.report())
            print(f"store: {args.out}")
            return 1 if summary.failed else 0
        existing(args.metadata, "--metadata", "file")
        existing(args.local, "--from", "dir")
        output_folder(args.out)
        from . import wlasl
        from .download import FetchConfig

        path = args.metadata or wlasl.default_metadata()
        glosses = args.glosses.split(",") if args.glosses else None
        instances = wlasl.select(wlasl.load_metadata(path), glosses, args.top)
        print(wlasl.format_report(wlasl.report(instances, args.out)))
        if args.report_only:
            return 0
        config = FetchConfig(jobs=args.jobs, per_host=args.per_host, timeout=args.timeout, retries=args.retries,
                             max_bytes=int(args.max_mb * 1e6))  # fmt: skip
        summary = wlasl.fetch(instances, args.out, config, local=args.local, clips_are=args.clips_are,
                              retry_missing=args.retry_missing, progress=not args.no_progress)  # fmt: skip
        print(summary.report())
        print(wlasl.format_report(wlasl.report(instances, args.out)))
        print(f"manifest: {args.out}/manifest.csv; ids to request from the WLASL authors: {args.out}/missing.txt")
        return 1 if summary.errors else 0

    p.set_defaults(func=run)


@command(
    "extract",
    "extract MediaPipe Holistic keypoints (frames, 1662) from a video or a folder of videos into a keypoint store",
    "signrec extract videos/ --out keypoints/ --workers 2\n"
    "  signrec extract ../shared/data/videos/wlasl12 --out kp/wlasl12      (wlasl12.csv beside it: split, signer)\n"
    "  signrec extract clip.mp4 --out keypoints/ --frame-start 2055 --frame-end 2111\n"
    "  signrec extract videos/ --out keypoints/ --scheduler local:2         (a Dask LocalCluster of 2 workers)\n"
    "  signrec extract videos/ --out keypoints/ --scheduler tcp://head:8786 (a running Dask cluster; docs/cluster.md)",
)
def _extract(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="a video file, or a folder laid out as <gloss>/<id>.mp4")
    p.add_argument("--out", required=True, help="the keypoint store (mirrors the input as <gloss>/<id>.npy)")
    p.add_argument("--workers", type=positive(int), default=None,
                   help="processes of the built-in pool (default: all cores)")
    p.add_argument("--scheduler", help="run clips on Dask instead of the built-in pool: local:N starts a LocalCluster "
                   "of N single-threaded workers, tcp://HOST:PORT uses a running Dask scheduler (its workers need "
                   "signrec and the videos at the same paths; they send keypoints back, this process writes them) (default: the "
                   "built-in process pool)")  # fmt: skip
    p.add_argument("--frame-start", type=int, default=1, help="first frame, 1-based")
    p.add_argument("--frame-end", type=int, default=-1, help="last frame, inclusive; -1 = to the end")
    p.add_argument("--metadata", help="CSV with id/video_id and columns to carry (split, signer, gloss, frame_start, "
                   "...) (default: INPUT/manifest.csv, INPUT/index.csv or INPUT.csv beside the folder)")  # fmt: skip
    p.add_argument("--min-person", type=float, default=0.2,
                   help="fail clips where pose or hands are found in fewer than this share of frames")
    p.add_argument("--dtype", choices=["float32", "float16"], default="float32", help="stored precision")
    p.add_argument("--format", choices=["npy", "pose"], default="npy", help="npy: the store's arrays; pose: also a "
                   "pose-format .pose file per clip beside its array (pip install 'signrec[pose]')")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    def run(args: argparse.Namespace) -> int:
        existing(args.input, "INPUT")
        existing(args.metadata, "--metadata", "file")
        output_folder(args.out)
        scheduler(args.scheduler, args.workers)
        from .extract import extract
        from .video import FrameRange

        summary = extract(args.input, args.out, workers=args.workers, frame_range=FrameRange(args.frame_start, args.frame_end),
                          metadata=args.metadata, min_person=args.min_person, progress=not args.no_progress,
                          dtype=args.dtype, scheduler=args.scheduler, keypoint_format=args.format)  # fmt: skip
        print(summary.report())
        return 1 if summary.failed else 0

    p.set_defaults(func=run)


def _data_args(p: argparse.ArgumentParser, extra: bool = True) -> None:
    g = p.add_argument_group("which clips")
    g.add_argument("--split", default="auto",
                   help="auto (official if the data has one, else signer-disjoint if it names signers, else "
                   "stratified), official, stratified[:SEED], signer[:FOLD], or a split.json")  # fmt: skip
    g.add_argument("--where", action="append", help="keep only clips whose column matches, e.g. wlasl100=1 (repeatable)")
    if extra:
        g.add_argument("--extra-glosses", action="store_true",
                       help="with --where: also learn from the clips of the glosses it leaves out (all the data, one "
                       "split), while the model answers only among the glosses it keeps; e.g. a WLASL100 model that "
                       "learnt from all of WLASL300")  # fmt: skip


def _check_extra_glosses(args: argparse.Namespace) -> None:
    if args.extra_glosses and not args.where:
        raise UsageError("--extra-glosses: give --where to say which glosses the model answers among")


def _training_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training")
    g.add_argument("--max-epochs", type=positive(int), help="upper bound on epochs (default: the recipe's)")
    g.add_argument("--patience", type=positive(int), help="early stopping: epochs without a better val loss "
                   "(default: the recipe's)")  # fmt: skip
    g.add_argument("--max-minutes", type=positive(float), help="stop gracefully after this long, keeping the best "
                   "model; with the plateau schedule (the best recipe's) the rate's decay starts in time to end "
                   "by then; a refit is capped in proportion to its clips, its epochs compressed to fit")  # fmt: skip
    g.add_argument("--batch-size", type=positive(int), help="default: the recipe's (32)")
    g.add_argument("--lr", type=positive(float), help="learning rate (default: the recipe's)")
    g.add_argument("--threads", type=positive(int), help="torch threads (default: measured at the start)")
    g.add_argument("--seed", type=int, default=0, help="random seed")
    g.add_argument("--activation", choices=["tanh", "relu"], default="tanh",
                   help="activation inside the reference LSTMs (tanh: Keras's default; relu: the popular tutorial's)")
    g.add_argument("--force", action="store_true", help="replace a run in --out that was made with other settings")
    g.add_argument("--no-progress", action="store_true", help="no progress lines")


def _mixup_arg(g: argparse._ActionsContainer, which: str, default: str) -> None:
    g.add_argument("--mixup", type=float, metavar="ALPHA", help=f"mix each training batch {which}with itself in "
                   f"another order, by a weight drawn from Beta(ALPHA, ALPHA), and the loss alike (0: off; torch only) "
                   f"(default: {default})")  # fmt: skip


def _precision_arg(g: argparse._ActionsContainer, which: str, default: str) -> None:
    g.add_argument("--precision", choices=PRECISIONS, help=f"arithmetic of training {which}(torch): 32 "
                   "float32; bf16 mixed precision (matrix products in bfloat16; weights, losses and validation in float32); auto "
                   "bf16 for the convformer on a CPU with bfloat16 instructions (AVX512-BF16, AMX), else 32; evaluation "
                   f"and prediction always in float32 (default: {default})")  # fmt: skip


def _ensemble_arg(p: argparse.ArgumentParser, which: str, refit_default: str, default: str = "1") -> None:
    p.add_argument("--ensemble", type=positive(int), help=f"train {which} N times (seeds SEED, SEED+1, ...) and "
                   f"average their probabilities: slower by N, usually a few points more accurate (default: {default})")  # fmt: skip
    p.add_argument("--refit", action=argparse.BooleanOptionalAction, default=None,
                   help=f"once validation has chosen how long to train {which}, train it again (another seed) on the "
                   "training and validation clips together for as long, and average the two: about twice the time, "
                   f"more data learnt from; validation figures are of the validated model alone (default: {refit_default})")  # fmt: skip


def _device_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("devices (PyTorch models; GPUs are used when there are some, CPUs otherwise)")
    g.add_argument("--devices", type=positive(int), default=1,
                   help="processes per machine for data-parallel training: GPUs, or CPU processes sharing the cores")
    g.add_argument("--strategy", choices=["auto", "ddp"], default="auto",
                   help="Lightning strategy; ddp runs one process per device, each on its share of the clips "
                   "(auto: ddp when --devices or --num-nodes is above 1)")  # fmt: skip
    g.add_argument("--num-nodes", type=positive(int), default=1,
                   help="machines, each running this command under srun or torchrun (docs/cluster.md)")


def _switches(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what each improvement is (default: the recipe's)")
    g.add_argument("--recipe", choices=RECIPES, default="reference",
                   help="reference: the 3-LSTM model on raw 1662 values, as specified; best: signrec's best recipe")
    g.add_argument("--model", choices=MODELS, help="architecture (torch only; default: the recipe's)")
    g.add_argument("--read", choices=["last_valid", "final"], default="last_valid",
                   help="LSTM output read at each clip's last frame, or at the final padded step (the seed's way)")
    g.add_argument("--features", help="all (1662), pose_hands (258), hands, pose, or compact (pose+hands+25 face points)")
    g.add_argument("--parts", help="keypoint parts the model may read, e.g. pose_hands or pose+left_hand+right_hand "
                   "(default: all the data has)")  # fmt: skip
    g.add_argument("--normalize", choices=["none", "body", "hands", "auto"],
                   help="coordinates relative to the body (shoulders), to the hands, or auto (body if there is one)")
    for name, what in (("hand-view", "each hand relative to its wrist as an extra view"),
                       ("hand-shape", "distances between joints of each hand, in hand sizes"),
                       ("bones", "each hand's bones as unit directions and how far each finger joint bends"),
                       ("image-place", "without a body: each wrist's place in the frame and the hand's size there"),
                       ("motion", "frame differences"), ("flags", "which parts were found, per frame"),
                       ("trim", "drop the frames before the first and after the last hand"),
                       ("aspect", "undo the camera's aspect ratio (portrait vs landscape) from the body's proportions"),
                       ("depth", "MediaPipe's z (--no-depth: x and y only, the best recipe's default; z is a one-camera guess)")):  # fmt: skip
        g.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=None, help=what)
    g.add_argument("--resample", type=int, help="resample longer sequences to this many frames (0: never)")
    g.add_argument("--fill-gaps", type=int, help="interpolate hands lost for at most this many frames in a row")
    g.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="mirror (hands swapped), rotation/scale, time stretch, dropped frames")
    g.add_argument("--one-hand", type=float, metavar="P",
                   help="how often a symmetric two-handed clip is made one-handed (best recipe: 0.5; 0.8 scored "
                   "higher on new webcam signers, unmeasured on WLASL: BENCHMARKS.md)")  # fmt: skip
    g.add_argument("--hand-place", type=float, metavar="D",
                   help="both hands moved by up to D shoulder widths from where they were signed, the same all clip, "
                   "in clips with a body (people sign at other heights; best recipe: 1.0, BENCHMARKS.md)")  # fmt: skip
    g.add_argument("--optimizer", choices=["adam", "adamw"])
    g.add_argument("--schedule", choices=["none", "cosine", "plateau"], help="learning-rate schedule: cosine over "
                   "--max-epochs, or plateau: constant until validation stops improving, then a decay that ends "
                   "training (--max-epochs only caps it)")
    g.add_argument("--plateau-wait", type=positive(int), metavar="N", help="plateau: epochs without a better validation loss "
                   "that start the decay (default 10)")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--label-smoothing", type=float)
    g.add_argument("--grad-clip", type=float, help="clip the gradient norm (0: off)")
    g.add_argument("--ema", type=float, help="moving average of the weights, decay per step (0: off)")
    _mixup_arg(g, "", "0")
    _precision_arg(g, "", "the recipe's: best auto, reference 32")
    g.add_argument("--drop-path", type=float, help="stochastic depth of the convformer's blocks (0: off)")
    g.add_argument("--head-dropout", type=float, help="the convformer's dropout before its output layer (default: "
                   "its blocks' dropout, 0.3)")


def _amounts(args: argparse.Namespace, ranges: dict[str, tuple[str, float | None]]):
    """(name, flag, value) of each amount switch the user gave, checked against its range: `ranges` maps a name to
    its unit and largest value (None: below 1, a dropout's probability)."""
    for name, (unit, most) in ranges.items():
        value, flag = getattr(args, name, None), "--" + name.replace("_", "-")
        if value is None:
            continue
        if not (0 <= value < 1 if most is None else 0 <= value <= most):
            raise UsageError(f"{flag} {value}: {unit}, from 0 to " + ("below 1" if most is None else f"{most}"))
        yield name, flag, value


def _recipe(args: argparse.Namespace):
    """The chosen recipe with every switch the user gave applied."""
    from dataclasses import replace

    from .presets import recipe
    from .transforms import Augment

    r = recipe(args.recipe, **({"activation": args.activation} if args.recipe == "reference" else {}))
    pre = {k: getattr(args, k) for k in ("features", "normalize", "hand_view", "hand_shape", "bones", "image_place",
                                         "motion", "flags", "resample", "fill_gaps", "trim", "aspect", "depth")
           if getattr(args, k, None) is not None}  # fmt: skip
    if pre.get("resample") == 0:
        pre["resample"] = None
    if getattr(args, "parts", None):
        from . import layout

        try:
            pre["parts"] = layout.check_parts(args.parts)
        except ValueError as e:
            raise UsageError(f"--parts {args.parts}: {e}") from None
    config = {k: getattr(args, k) for k in ("optimizer", "schedule", "weight_decay", "label_smoothing", "grad_clip",
                                            "max_epochs", "patience", "batch_size", "lr", "max_minutes", "threads",
                                            "devices", "strategy", "num_nodes", "ema", "ensemble", "plateau_wait", "refit",
                                            "mixup", "precision")
              if getattr(args, k, None) is not None}  # fmt: skip
    config.update(seed=args.seed, progress=not args.no_progress)
    augment = r.augment if args.augment is None else ((r.augment or Augment()) if args.augment else None)
    for name, flag, value in _amounts(args, {"one_hand": ("a probability", 1), "hand_place": ("shoulder widths", 3)}):
        if augment is None:
            raise UsageError(f"{flag} is an augmentation; this recipe trains without (add --augment)")
        augment = replace(augment, **{name: value})
    model = args.model or r.model
    options = dict(r.model_options) if model == r.model else {}
    for name, flag, value in _amounts(args, {"drop_path": ("a probability", None), "head_dropout": ("a probability", None)}):
        if model != "convformer":
            raise UsageError(f"{flag} is an option of the convformer, not of {model}")
        options[name] = value
    if model == "lstm":
        options["activation"] = args.activation
        if args.framework == "torch":
            options["read"] = args.read
    config = replace(r.config, **config)
    if getattr(args, "plateau_wait", None) is not None and config.schedule != "plateau":
        raise UsageError(f"--plateau-wait is for --schedule plateau (this recipe's schedule: {config.schedule})")
    return replace(r, model=model, model_options=options, preprocess=replace(r.preprocess, **pre), augment=augment,
                   config=config)  # fmt: skip


@command(
    "train",
    "train a model on a keypoint store and write a self-describing run folder",
    "signrec train keypoints/ --out runs/torch\n"
    "  signrec train keypoints/ --recipe best --out runs/best\n"
    "  signrec train kp/wlasl300 --recipe best --where wlasl100=1 --out runs/wlasl100\n"
    "  signrec train keypoints/ --recipe best --no-augment --out runs/best-no-augment   (what augmentation buys)\n"
    "  signrec train keypoints/ --recipe best --devices 2 --strategy ddp --out runs/best   (2 processes or GPUs)",
)
def _train(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="keypoint store (a folder of <gloss>/<id>.npy with its manifest.csv)")
    p.add_argument("--out", required=True, help="run folder (split.json, history.csv, checkpoint, run.json)")
    p.add_argument("--framework", choices=["torch", "keras"], default="torch")
    _data_args(p)
    _training_args(p)
    _ensemble_arg(p, "the model", "off")
    _device_args(p)
    _switches(p)

    def run(args: argparse.Namespace) -> int:
        existing(args.data, "DATA", "dir")
        output_folder(args.out)
        split_spec(args.split)
        if args.framework == "keras" and args.model not in (None, "lstm"):
            raise UsageError(f"--model {args.model}: the Keras baseline is the reference LSTM only; use --framework torch")
        if args.framework == "keras" and (args.devices > 1 or args.num_nodes > 1):
            raise UsageError("--devices/--num-nodes: the Keras baseline trains in one process; use --framework torch")
        from .training.runner import train

        _check_extra_glosses(args)
        r = _recipe(args)
        res = train(args.data, args.out, r, args.framework, args.split, args.where, args.force,
                    extra_glosses=args.extra_glosses)  # fmt: skip
        print(res.line())
        print(f"split: {res.split}\ncheckpoint: {res.checkpoint}")
        return 0

    p.set_defaults(func=run)


@command(
    "compare",
    "train the PyTorch and the Keras reference LSTM on the same split and write a side-by-side report",
    "signrec compare keypoints/ --out runs/compare --max-epochs 300",
)
def _compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="keypoint store")
    p.add_argument("--out", required=True, help="folder for both runs, comparison.csv and report.md")
    _data_args(p, extra=False)
    _training_args(p)

    def run(args: argparse.Namespace) -> int:
        existing(args.data, "DATA", "dir")
        output_folder(args.out)
        split_spec(args.split)
        from dataclasses import replace

        from .pipeline import compare
        from .presets import reference

        given = {k: getattr(args, k) for k in ("max_epochs", "patience", "batch_size", "lr", "max_minutes", "threads")
                 if getattr(args, k) is not None}  # fmt: skip
        config = replace(reference(args.activation).config, **given, seed=args.seed, progress=not args.no_progress)
        c = compare(args.data, args.out, config, args.activation, split=args.split, where=args.where, force=args.force,
                    command=_command_line(args))  # fmt: skip
        print(c.table)
        print(f"report: {c.report}")
        return 0

    p.set_defaults(func=run)


@command(
    "run",
    "the whole job: WLASL glosses, a folder of clips or of keypoints -> keypoints -> reference and best models "
    "-> one report",
    "signrec run --videos ../shared/data/videos/wlasl12 --out work/run     (offline, local clips)\n"
    "  signrec run --keypoints ../shared/data/keypoints/wlasl300-hands --models best --out work/wlasl300\n"
    "  signrec run --keypoints ../shared/data/keypoints/wlasl300-hands --where wlasl100=1 --extra-glosses --models best "
    "--out work/wlasl100\n"
    "  signrec run --glosses book,drink,hello,idea --out work/wlasl4       (downloads WLASL)\n"
    "  signrec run --videos videos/ --scheduler local:2 --devices 2 --strategy ddp --out work/run",
)
def _run(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--glosses", help="WLASL glosses, comma-separated (fetched into OUT/videos)")
    src.add_argument("--top", type=int, choices=TOP, help="the first N WLASL glosses")
    src.add_argument("--videos", help="folder of clips laid out as <gloss>/<id>.mp4 (a CSV beside it or inside it "
                     "gives split, signer and other columns)")  # fmt: skip
    src.add_argument("--keypoints", action="append", help="keypoint folder: a store, or any layout `data import` "
                     "takes (imported into OUT/keypoints); repeat to train on several sources at once")  # fmt: skip
    p.add_argument("--out", required=True, help="report folder: report.md, comparison.csv, runs/, keypoints/")
    p.add_argument("--metadata", help="with --glosses/--top: WLASL_v0.3.json (default: downloaded once); with "
                   "--videos: the CSV describing the clips")  # fmt: skip
    p.add_argument("--from", dest="local", help="with --glosses/--top: a local folder of <video_id>.mp4 clips")
    p.add_argument("--models", default=",".join(RUN_MODELS), help="comma-separated: " + ", ".join(RUN_MODELS))
    p.add_argument("--alias", action="append", help="rename glosses of --keypoints sources, SOURCE=GLOSS")
    p.add_argument("--workers", type=positive(int), help="extraction processes (default: all cores)")
    p.add_argument("--scheduler", help="extract on Dask instead of the built-in pool: local:N or tcp://HOST:PORT "
                   "(see signrec extract --help) (default: the built-in process pool)")  # fmt: skip
    _data_args(p)
    _training_args(p)
    _ensemble_arg(p, "the best model", f"on when one process trains on at most {SMALL_SET_MAX_CLIPS:,} clips, or "
                  f"on more with the mixup chosen by default; several processes train no refit",
                  f"{SMALL_SET_ENSEMBLE} where the refit and the mixup chosen by default are on and the split trains on at "
                  f"most {SMALL_SET_MAX_CLIPS:,} clips, each validated model's training then capped at "
                  f"{SMALL_SET_MINUTES:g} min and its refit's in proportion unless --max-minutes says otherwise, so "
                  f"that they end within the hour; else 1. --ensemble N trains N validated models (and their refits) "
                  f"with no cap unless --max-minutes gives one")  # fmt: skip
    _mixup_arg(p, "of the best model ", f"{MIXUP_ALPHA:g} when the split trains on at most {MIXUP_MAX_CLIPS_A_SIGN} "
               f"clips a sign on average and {MIXUP_CAPPED_MAX_CLIPS:,} in all, else 0; on more than "
               f"{SMALL_SET_MAX_CLIPS:,} clips with the validated model's training capped at "
               f"{REFIT_LARGE_SET_MINUTES:g} min and its refit as many epochs ({MIXUP_LARGE_SET_MINUTES:g} min "
               f"without a refit: --no-refit or several processes) unless --max-minutes says otherwise")  # fmt: skip
    _precision_arg(p, "the best model ", "auto; the reference models always 32")
    _device_args(p)

    def run(args: argparse.Namespace) -> int:
        scheduler(args.scheduler, args.workers)
        existing(args.videos, "--videos", "dir")
        for k in args.keypoints or []:
            existing(k, "--keypoints", "dir")
        existing(args.metadata, "--metadata", "file")
        existing(args.local, "--from", "dir")
        output_folder(args.out)
        split_spec(args.split)
        models = tuple(m.strip() for m in args.models.split(",") if m.strip())
        bad = [m for m in models if m not in RUN_MODELS]
        if bad or not models:
            raise UsageError(f"--models {args.models}: unknown {', '.join(bad) or 'none given'}; known: {', '.join(RUN_MODELS)}")
        names = aliases(args.alias)
        _check_extra_glosses(args)
        from .pipeline import run as run_job

        s = run_job(args.out, videos=args.videos, keypoints=args.keypoints,
                    glosses=args.glosses.split(",") if args.glosses else None, top=args.top, metadata=args.metadata,
                    local=args.local, models=models, max_epochs=args.max_epochs, max_minutes=args.max_minutes,
                    ensemble=args.ensemble, refit=args.refit, mixup=args.mixup, precision=args.precision,
                    workers=args.workers, seed=args.seed, split=args.split, where=args.where, aliases=names,
                    extra_glosses=args.extra_glosses,
                    threads=args.threads, force=args.force, progress=not args.no_progress,
                    command=_command_line(args), scheduler=args.scheduler, devices=args.devices,
                    strategy=args.strategy, num_nodes=args.num_nodes)  # fmt: skip
        print(s.table)
        print("stages: " + ", ".join(f"{k} ({v})" for k, v in s.stages.items()))
        print(f"report: {s.report}")
        return 0

    p.set_defaults(func=run)


@command(
    "evaluate",
    "evaluate a run: top-1/top-5, per-gloss metrics, bootstrap interval, confusions, curves, report",
    "signrec evaluate runs/torch                                  # its test split\n"
    "  signrec evaluate runs/best --split val\n"
    "  signrec evaluate runs/best --data new_signers/ --split all   # other clips; unknown glosses are skipped",
)
def _evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder (or a checkpoint file inside one)")
    p.add_argument("--data", help="keypoint store (default: the one the run was trained on), or a folder of keypoints "
                   "that is not one yet, such as one with an index.csv as `run --keypoints` takes: imported for this "
                   "evaluation alone, into a temporary store")
    p.add_argument("--split", choices=["test", "val", "train", "all"], default="test",
                   help="which side of the run's split, or all clips of --data")
    p.add_argument("--where", action="append", help="keep only clips whose column matches, e.g. wlasl100=1")
    p.add_argument("--out", help="output folder (default: beside the checkpoint, eval-<data>-<split>; for another "
                   "checkpoint than the run's model: eval-validated-<data>-<split> for validated.pt, "
                   "eval-model-onnx-... for model.onnx)")

    def run(args: argparse.Namespace) -> int:
        checkpoint(args.run)
        existing(args.data, "--data", "dir")
        if args.out:
            output_folder(args.out)
        from .evaluate import evaluate_run

        ev = evaluate_run(args.run, args.data, args.split, args.out, args.where)
        print(ev.summary_line())
        for w in ev.warnings:
            print(f"warning: {w}")
        print(f"report: {ev.files['report']}")
        return 0

    p.set_defaults(func=run)


@command(
    "predict",
    "predict the sign in videos or keypoint files with a run, a checkpoint or an ONNX model (top-k glosses)",
    "signrec predict runs/torch clip.mp4 more_clips/ --top-k 3\n"
    "  signrec predict model.onnx clip.mp4 keypoints/book/68011.npy --json   (onnxruntime, no PyTorch)",
)
def _predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="run folder, model.pt, model.keras or model.onnx")
    p.add_argument("inputs", nargs="+", help="video files, keypoint files (.npy, .pose) or folders of them")
    p.add_argument("--top-k", type=positive(int), default=3, help="how many glosses to list")
    p.add_argument("--threshold", type=float, help="answer 'unknown' below this probability (default: the threshold "
                   "chosen on validation, stored in the model; 0: always answer)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="one JSON document on stdout, for machines")
    p.add_argument("--verbose", action="store_true", help="show MediaPipe's and TensorFlow Lite's own log lines")

    def run(args: argparse.Namespace) -> int:
        checkpoint(args.model)
        for item in args.inputs:
            existing(item, "input")
        import json

        from .extract import native_log_filter
        from .predict import predict_files

        with native_log_filter(not args.verbose):
            results = predict_files(args.model, args.inputs, args.top_k, quiet=not args.verbose, threshold=args.threshold)
        if args.json:
            print(json.dumps([r.to_dict() for r in results], indent=2))
        else:
            for r in results:
                if r.error:
                    print(f"{r.input}: ERROR {r.error}")
                else:
                    guess = ", ".join(f"{g} {p:.1%}" for g, p in r.top)
                    print(f"{r.input} ({r.frames} frames): " + (guess if r.answer != "unknown" else f"unknown (not sure: {guess})"))
        return 1 if any(r.error for r in results) else 0

    p.set_defaults(func=run)


def _window_args(p: argparse.ArgumentParser) -> None:
    """The sliding window's settings, shared by `live` and `serve` (the same window runs in both)."""
    g = p.add_argument_group("live recognition (the sliding window)")
    g.add_argument("--window", type=positive(int), help="frames per window (default: a typical training clip)")
    g.add_argument("--stride", type=positive(int), default=2, help="predict every N frames")
    g.add_argument("--threshold", type=float, help="minimum probability to show a sign (default: the threshold chosen "
                   "on validation, stored in the model; 0.7 for models without one)")  # fmt: skip
    g.add_argument("--stable", type=positive(int), default=3, help="windows in a row that must agree")


@command(
    "live",
    "recognise signs live from a camera (or a video standing in for one), with landmarks and prediction drawn",
    "signrec live runs/torch --source 0\n  signrec live runs/torch --source clip.mp4 --output annotated.mp4",
)
def _live(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="run folder, model.pt, model.keras or model.onnx")
    p.add_argument("--source", default="0", help="camera index or video file")
    p.add_argument("--output", help="write the annotated video here (and a .csv prediction log) instead of a window")
    _window_args(p)
    p.add_argument("--verbose", action="store_true", help="show MediaPipe's and TensorFlow Lite's own log lines")

    def run(args: argparse.Namespace) -> int:
        checkpoint(args.model)
        if not args.source.isdigit():
            existing(args.source, "--source", "file")
        if args.output:
            existing(str(Path(args.output).parent), "--output's folder", "dir")
        from .extract import native_log_filter
        from .live import LiveConfig, live

        with native_log_filter(not args.verbose):
            r = live(args.model, args.source, args.output,
                     LiveConfig(args.window, args.stride, args.threshold, args.stable), quiet=not args.verbose)  # fmt: skip
        shown = ", ".join(f"{g}: {n} frames" for g, n in sorted(r.shown.items(), key=lambda kv: -kv[1]))
        print(f"{r.frames} frames, {r.predictions} predictions (window {r.window} frames), "
              f"{r.frames / max(r.seconds, 1e-9):.1f} frames/s; shown: {shown}")  # fmt: skip
        if r.warning:
            print(f"warning: {r.warning}")
        print(f"prediction log: {r.log}" + (f"\nannotated video: {r.output}" if r.output else ""))
        return 0

    p.set_defaults(func=run)


@command(
    "serve",
    "a web page for people who do not use a terminal (upload a clip, or sign to the camera) and a JSON API",
    "signrec serve runs/best                  (then open http://127.0.0.1:8000 in a browser)\n"
    "  signrec serve best.onnx --port 8080 --max-mb 50\n"
    "  signrec serve runs/best --host 0.0.0.0    (other machines may connect: it warns)",
)
def _serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="run folder, model.pt, model.keras or model.onnx")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (only this machine unless changed)")
    p.add_argument("--port", type=int, default=8000, help="port (0: any free port, printed at start)")
    p.add_argument("--max-mb", type=positive(float), default=100.0, help="largest upload; larger ones get 413")
    p.add_argument("--max-frames", type=positive(int), default=900, help="longest clip, in frames")
    p.add_argument("--workers", type=positive(int), default=max(1, (os.cpu_count() or 2) // 2),
                   help="clips recognised at a time (MediaPipe uses about two cores each)")
    p.add_argument("--queue", type=int, default=8, help="clips waiting at most; more get 503 with Retry-After")
    p.add_argument("--live-sessions", type=positive(int), default=2, help="camera sessions at a time")
    p.add_argument("--top-k", type=positive(int), default=5, help="glosses listed per clip")
    _window_args(p)
    p.add_argument("--verbose", action="store_true", help="show MediaPipe's and TensorFlow Lite's own log lines")

    def run(args: argparse.Namespace) -> int:
        checkpoint(args.model)
        if not 0 <= args.port <= 65535:
            raise UsageError(f"--port {args.port}: must be 0-65535")
        if args.queue < 0:
            raise UsageError(f"--queue {args.queue}: must be 0 or more")
        from .live import LiveConfig
        from .serve import ServeOptions, serve

        options = ServeOptions(max_mb=args.max_mb, workers=args.workers, queue=args.queue,
                               live_sessions=args.live_sessions, top_k=args.top_k, max_frames=args.max_frames,
                               live=LiveConfig(args.window, args.stride, args.threshold, args.stable),
                               quiet=not args.verbose)  # fmt: skip
        try:
            serve(args.model, args.host, args.port, options, verbose=args.verbose)
        except KeyboardInterrupt:
            print("signrec serve: stopped")
            return 130
        return 0

    p.set_defaults(func=run)


@command(
    "export",
    "export a PyTorch run to ONNX (any clip length; the card inside, so `signrec predict model.onnx` works alone)",
    "signrec export runs/best --onnx best.onnx",
)
def _export(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="run folder or model.pt")
    p.add_argument("--onnx", required=True, help="output .onnx file")
    p.add_argument("--frames", type=positive(int), help="time steps of a fixed-length export (only for relu LSTMs, "
                   "which ONNX's LSTM cannot run; default: the longest training clip)")  # fmt: skip

    def run(args: argparse.Namespace) -> int:
        checkpoint(args.model, torch_only=True)
        output_folder(str(Path(args.onnx).parent) or ".", "--onnx's folder")
        from .export import export_onnx

        print(f"wrote {export_onnx(args.model, args.onnx, args.frames)}")
        return 0

    p.set_defaults(func=run)


def _command_line(args: argparse.Namespace) -> str:
    """The command as the user gave it (to `main`, not necessarily `sys.argv`), for the report."""
    return "signrec " + " ".join(shlex.quote(a) for a in args.argv)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="signrec",
        description="Isolated sign-language word recognition: WLASL data -> keypoints -> models -> reports.",
        formatter_class=Formatter,
        epilog="Run `signrec COMMAND --help` for each command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"signrec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, fn in COMMANDS.items():
        p = sub.add_parser(
            name, help=fn.help, description=fn.help, epilog=f"example:\n  {fn.example}",  # type: ignore[attr-defined]
            formatter_class=Formatter,
        )  # fmt: skip
        fn(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SecondaryRank:  # another process of a distributed run, done: rank 0 prints and writes
        return 0
    except Interrupted as e:
        print(f"signrec {args.command}: {e}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:
        print(f"signrec {args.command}: interrupted; what was finished is kept: run the same command again to resume",
              file=sys.stderr)  # fmt: skip
        return 130
    except (FileNotFoundError, ValueError, OSError, KeyError) as e:
        print(f"signrec {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
