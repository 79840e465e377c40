"""The `signrec` command: parses arguments, calls one library function per subcommand, prints the result."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

COMMANDS: dict[str, Callable[[argparse.ArgumentParser], None]] = {}


def command(name: str, help: str, example: str) -> Callable:
    """Register a subcommand: `fn(parser)` adds its arguments and sets `func`."""

    def wrap(fn: Callable[[argparse.ArgumentParser], None]) -> Callable:
        fn.help, fn.example = help, example  # type: ignore[attr-defined]
        COMMANDS[name] = fn
        return fn

    return wrap


def _frame_range(args: argparse.Namespace):
    from .video import FrameRange

    return FrameRange(args.frame_start, args.frame_end)


@command(
    "data",
    "get WLASL clips (choose glosses, download what still exists, trim, keep the splits) or import keypoints",
    "signrec data wlasl --glosses book,drink,hello,idea --out videos/\n"
    "  signrec data wlasl --top 100 --out wlasl100/ --jobs 8\n"
    "  signrec data wlasl --from WLASL2000/ --glosses book,drink --out videos/   (local clips, no network)\n"
    "  signrec data import MP_Data/ --out keypoints/",
)
def _data(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="{wlasl,import}", required=True)
    w = sub.add_parser("wlasl", help="WLASL clips: report, download, trim, lay out as OUT/<gloss>/<video_id>.mp4",
                       description="Prints per gloss and split how many instances exist, are on disk and are "
                       "missing; then fetches what is missing (unless --report-only) and prints it again.")  # fmt: skip
    w.add_argument("--metadata", help="WLASL_v0.3.json (default: downloaded once from the WLASL repository)")
    which = w.add_mutually_exclusive_group()
    which.add_argument("--glosses", help="comma-separated glosses (default: book,drink,hello,idea)")
    which.add_argument("--top", type=int, help="the first N glosses: 100, 300, 1000 or 2000 (WLASL100...)")
    w.add_argument("--out", required=True, help="output folder: OUT/<gloss>/<video_id>.mp4 + manifest.csv")
    w.add_argument("--from", dest="local", help="take clips from this folder of <video_id>.mp4 instead of the web")
    w.add_argument("--clips-are", choices=["auto", "whole", "trimmed"], default="auto",
                   help="with --from: whether the clips hold the whole source video or only the sign")
    w.add_argument("--report-only", action="store_true", help="print the report, fetch nothing")
    w.add_argument("--retry-missing", action="store_true", help="try again links an earlier run found dead")
    w.add_argument("--jobs", type=int, default=4, help="downloads at a time (default 4)")
    w.add_argument("--per-host", type=int, default=2, help="downloads at a time from one site (default 2)")
    w.add_argument("--timeout", type=float, default=30.0, help="seconds without data before a try fails")
    w.add_argument("--retries", type=int, default=3, help="further tries after a transient failure")
    w.add_argument("--max-mb", type=float, default=1024, help="refuse downloads larger than this (MB)")
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    i = sub.add_parser("import", help="keypoints in other layouts (MP_Data/<action>/<seq>/<frame>.npy, 258 "
                       "values) into OUT/<gloss>/<id>.npy (T, 1662) with a manifest")  # fmt: skip
    i.add_argument("src", help="folder of keypoints")
    i.add_argument("--out", required=True, help="output keypoint folder")
    i.add_argument("--group-as", default="group",
                   help="manifest column for folders above the gloss folder (e.g. signer_id)")
    i.add_argument("--no-progress", action="store_true", help="no progress bar")

    def run(args: argparse.Namespace) -> int:
        if args.data_command == "import":
            from .importer import import_keypoints

            summary = import_keypoints(args.src, args.out, group_as=args.group_as, progress=not args.no_progress)
            print(summary.report())
            return 1 if summary.failed else 0
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
    "extract MediaPipe Holistic keypoints (frames, 1662) from a video or a folder of videos",
    "signrec extract videos/ --out keypoints/ --workers 2\n"
    "  signrec extract clip.mp4 --out keypoints/ --frame-start 2055 --frame-end 2111",
)
def _extract(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="a video file, or a folder laid out as <gloss>/<id>.mp4")
    p.add_argument("--out", required=True, help="output folder (mirrors the input as <gloss>/<id>.npy)")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument("--frame-start", type=int, default=1, help="first frame, 1-based (default 1)")
    p.add_argument("--frame-end", type=int, default=-1, help="last frame, inclusive; -1 = to the end")
    p.add_argument("--metadata", help="CSV with id/video_id and extra columns (split, signer_id, frame_start, ...) "
                   "to carry into the manifest (default: INPUT/manifest.csv if present)")  # fmt: skip
    p.add_argument("--min-person", type=float, default=None,
                   help="fail clips where pose or hands are found in fewer than this share of frames (default 0.2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    def run(args: argparse.Namespace) -> int:
        from .extract import DEFAULT_MIN_PERSON, extract

        summary = extract(
            args.input, args.out, workers=args.workers, frame_range=_frame_range(args),
            metadata=args.metadata,
            min_person=DEFAULT_MIN_PERSON if args.min_person is None else args.min_person,
            progress=not args.no_progress,
        )  # fmt: skip
        print(summary.report())
        return 1 if summary.failed else 0

    p.set_defaults(func=run)


def _train_config(args: argparse.Namespace):
    from .training.config import TrainConfig

    given = {k: getattr(args, k) for k in ("max_epochs", "patience", "batch_size", "lr") if getattr(args, k) is not None}
    return TrainConfig(**given, seed=args.seed, progress=not args.no_progress)


def _training_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-epochs", type=int, help="upper bound on epochs (reference default 2000)")
    p.add_argument("--patience", type=int, help="early stopping: epochs without a better val loss (default 100)")
    p.add_argument("--batch-size", type=int, help="default 32")
    p.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--activation", choices=["tanh", "relu"], default="tanh",
                   help="activation inside the LSTMs (tanh: Keras's default; relu: the popular tutorial's)")
    p.add_argument("--no-progress", action="store_true")


def _switches(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what each improvement is (defaults: the recipe's)")
    g.add_argument("--recipe", choices=["reference", "best"], default="reference",
                   help="reference: the 3-LSTM model on raw 1662 values, as specified; best: signrec's best recipe")
    g.add_argument("--features", help="all (1662), pose_hands (258), hands, pose, or compact (pose+hands+25 face points)")
    g.add_argument("--normalize", choices=["none", "body"], help="coordinates relative to the body (shoulders)")
    for name, what in (("hand-view", "each hand relative to its wrist as an extra view"),
                       ("motion", "frame differences"), ("flags", "which parts were found, per frame")):  # fmt: skip
        g.add_argument(f"--{name}", action=argparse.BooleanOptionalAction, default=None, help=what)
    g.add_argument("--resample", type=int, help="resample longer sequences to this many frames")
    g.add_argument("--fill-gaps", type=int, help="interpolate hands lost for at most this many frames in a row")
    g.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None,
                   help="mirror (hands swapped), rotation/scale, time stretch, dropped frames")
    g.add_argument("--optimizer", choices=["adam", "adamw"])
    g.add_argument("--schedule", choices=["none", "cosine"], help="learning-rate schedule")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--label-smoothing", type=float)


def _recipe(args: argparse.Namespace):
    """The chosen recipe with every switch the user gave applied."""
    from dataclasses import replace

    from .presets import recipe
    from .transforms import Augment

    r = recipe(args.recipe, **({"activation": args.activation} if args.recipe == "reference" else {}))
    pre = {k: getattr(args, k) for k in ("features", "normalize", "hand_view", "motion", "flags", "resample", "fill_gaps")
           if getattr(args, k) is not None}  # fmt: skip
    config = {k: getattr(args, k) for k in ("optimizer", "schedule", "weight_decay", "label_smoothing")
              if getattr(args, k) is not None}  # fmt: skip
    for k in ("max_epochs", "patience", "batch_size", "lr"):
        if getattr(args, k) is not None:
            config[k] = getattr(args, k)
    config.update(seed=args.seed, progress=not args.no_progress)
    augment = r.augment if args.augment is None else (Augment() if args.augment else None)
    model = args.model or r.model
    options = dict(r.model_options) if model == r.model else {}
    return replace(r, model=model, model_options=options, preprocess=replace(r.preprocess, **pre), augment=augment,
                   config=replace(r.config, **config))  # fmt: skip


@command(
    "train",
    "train a model on a keypoint folder (<gloss>/<id>.npy [+ manifest.csv]) and write a run folder",
    "signrec train keypoints/ --framework torch --out runs/torch --max-epochs 300\n"
    "  signrec train keypoints/ --recipe best --out runs/best\n"
    "  signrec train keypoints/ --recipe best --no-augment --out runs/best-no-augment   (what augmentation buys)",
)
def _train(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="keypoint folder")
    p.add_argument("--out", required=True, help="run folder (split.json, history.csv, checkpoint, run.json)")
    p.add_argument("--framework", choices=["torch", "keras"], default="torch")
    p.add_argument("--model", help="registered model name: lstm, convformer, bigru (torch only; default: the recipe's)")
    p.add_argument("--read", choices=["last_valid", "final"], default="last_valid",
                   help="LSTM output read at each clip's last frame, or at the final padded step (the seed's way)")
    p.add_argument("--split", help="a split.json to reuse (default: the run's own, else official or stratified)")
    _training_args(p)
    _switches(p)

    def run(args: argparse.Namespace) -> int:
        from .training.runner import train

        r = _recipe(args)
        options = dict(r.model_options)
        if r.model == "lstm":
            options["activation"] = args.activation
            if args.framework == "torch":
                options["read"] = args.read
        res = train(args.data, args.out, args.framework, r.model, options, r.config, r.preprocess, args.split,
                    augment=r.augment)  # fmt: skip
        print(f"{res.framework}/{res.model}: {res.parameters:,} parameters, {res.epochs} epochs (best {res.best_epoch}), "
              f"val accuracy {res.val_acc:.1%}, {res.seconds_per_epoch:.2f} s/epoch, split {res.split}\n"
              f"checkpoint: {res.checkpoint}")  # fmt: skip
        return 0

    p.set_defaults(func=run)


@command(
    "compare",
    "train the PyTorch and the Keras reference LSTM on the same split and write a side-by-side report",
    "signrec compare keypoints/ --out runs/compare --max-epochs 300",
)
def _compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="keypoint folder")
    p.add_argument("--out", required=True, help="folder for both runs, comparison.csv and report.md")
    _training_args(p)

    def run(args: argparse.Namespace) -> int:
        from .pipeline import compare

        c = compare(args.data, args.out, _train_config(args), args.activation)
        print(c.table)
        print(f"report: {c.report}")
        return 0

    p.set_defaults(func=run)


@command(
    "run",
    "the whole job: WLASL glosses, a folder of clips or of keypoints -> keypoints -> reference and best models "
    "-> one report",
    "signrec run --videos ../shared/data/videos/wlasl12 --out work/run     (offline, local clips)\n"
    "  signrec run --glosses book,drink,hello,idea --out work/wlasl4       (downloads WLASL)\n"
    "  signrec run --keypoints MP_Data/ --out work/mine --models best",
)
def _run(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--glosses", help="WLASL glosses, comma-separated (fetched into OUT/videos)")
    src.add_argument("--top", type=int, help="the first N WLASL glosses (100, 300, 1000, 2000)")
    src.add_argument("--videos", help="folder of clips laid out as <gloss>/<id>.mp4")
    src.add_argument("--keypoints", help="folder of keypoints (signrec's layout, or one signrec data import takes)")
    p.add_argument("--out", required=True, help="report folder: report.md, comparison.csv, runs/, keypoints/")
    p.add_argument("--metadata", help="WLASL_v0.3.json (with --glosses/--top; default: downloaded once)")
    p.add_argument("--from", dest="local", help="with --glosses/--top: a local folder of <video_id>.mp4 clips")
    p.add_argument("--models", default="reference-torch,reference-keras,best",
                   help="comma-separated: reference-torch, reference-keras, best (default all three)")
    p.add_argument("--max-epochs", type=int, help="cap every model's epochs (for a quick look)")
    p.add_argument("--workers", type=int, help="extraction processes (default: all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")

    def run(args: argparse.Namespace) -> int:
        from .pipeline import run as run_job

        s = run_job(args.out, videos=args.videos, keypoints=args.keypoints,
                    glosses=args.glosses.split(",") if args.glosses else None, top=args.top, metadata=args.metadata,
                    local=args.local, models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
                    max_epochs=args.max_epochs, workers=args.workers, seed=args.seed,
                    progress=not args.no_progress)  # fmt: skip
        print(s.table)
        print("stages: " + ", ".join(f"{k} ({v})" for k, v in s.stages.items()))
        print(f"report: {s.report}")
        return 0

    p.set_defaults(func=run)


@command(
    "evaluate",
    "evaluate a run: top-1/top-5, per-gloss metrics, bootstrap interval, confusion matrices, curves, report",
    "signrec evaluate runs/torch                      # its test split\n"
    "  signrec evaluate runs/torch --data new_signers/ --split all",
)
def _evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="run folder (or checkpoint file with --data)")
    p.add_argument("--data", help="keypoint folder (default: the one the run was trained on)")
    p.add_argument("--split", choices=["test", "val", "train", "all"], default="test")
    p.add_argument("--out", help="output folder (default RUN/eval-SPLIT)")

    def run(args: argparse.Namespace) -> int:
        from .evaluate import evaluate_run

        ev = evaluate_run(args.run, args.data, args.split, args.out)
        print(ev.summary_line())
        if ev.skipped:
            print(f"skipped {ev.skipped} clips whose gloss the model does not know")
        print(f"report: {ev.files['report']}")
        return 0

    p.set_defaults(func=run)


@command(
    "predict",
    "predict the sign in video files with a trained run or checkpoint (top-k glosses with probabilities)",
    "signrec predict runs/torch clip.mp4 more_clips/ --top-k 3\n  signrec predict runs/keras/model.keras clip.mp4 --json",
)
def _predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="run folder, model.pt or model.keras")
    p.add_argument("videos", nargs="+", help="video files or folders")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--json", action="store_true", help="one JSON document on stdout, for machines")

    def run(args: argparse.Namespace) -> int:
        import json

        from .predict import predict_videos

        results = predict_videos(args.checkpoint, args.videos, args.top_k)
        if args.json:
            print(json.dumps([r.to_dict() for r in results], indent=2))
        else:
            for r in results:
                if r.error:
                    print(f"{r.video}: ERROR {r.error}")
                else:
                    print(f"{r.video} ({r.frames} frames): " + ", ".join(f"{g} {p:.1%}" for g, p in r.top))
        return 1 if any(r.error for r in results) else 0

    p.set_defaults(func=run)


@command(
    "live",
    "recognise signs live from a camera (or a video standing in for one), with landmarks and prediction drawn",
    "signrec live runs/torch --source 0\n  signrec live runs/torch --source clip.mp4 --output annotated.mp4",
)
def _live(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="run folder, model.pt or model.keras")
    p.add_argument("--source", default="0", help="camera index or video file (default 0)")
    p.add_argument("--output", help="write the annotated video here (and a .csv prediction log) instead of a window")
    p.add_argument("--window", type=int, help="frames per window (default: the model's sequence length)")
    p.add_argument("--stride", type=int, default=2, help="predict every N frames (default 2)")
    p.add_argument("--threshold", type=float, default=0.7, help="minimum probability to show a sign")
    p.add_argument("--stable", type=int, default=3, help="windows in a row that must agree (default 3)")

    def run(args: argparse.Namespace) -> int:
        from .live import LiveConfig, live

        r = live(args.checkpoint, args.source, args.output,
                 LiveConfig(args.window, args.stride, args.threshold, args.stable))  # fmt: skip
        shown = ", ".join(f"{g}: {n} frames" for g, n in sorted(r.shown.items(), key=lambda kv: -kv[1]))
        print(f"{r.frames} frames, {r.predictions} predictions, {r.frames / max(r.seconds, 1e-9):.1f} frames/s; shown: {shown}")
        print(f"prediction log: {r.log}" + (f"\nannotated video: {r.output}" if r.output else ""))
        return 0

    p.set_defaults(func=run)


@command(
    "export",
    "export a PyTorch run to ONNX (probabilities identical to PyTorch under onnxruntime)",
    "signrec export runs/torch --onnx model.onnx",
)
def _export(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="run folder or model.pt")
    p.add_argument("--onnx", required=True, help="output .onnx file")

    def run(args: argparse.Namespace) -> int:
        from .predict import export_onnx

        print(f"wrote {export_onnx(args.checkpoint, args.onnx)}")
        return 0

    p.set_defaults(func=run)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="signrec",
        description="Isolated sign-language word recognition: WLASL data -> keypoints -> models -> reports.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `signrec COMMAND --help` for each command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"signrec {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, fn in COMMANDS.items():
        p = sub.add_parser(
            name, help=fn.help, description=fn.help, epilog=f"example:\n  {fn.example}",  # type: ignore[attr-defined]
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )  # fmt: skip
        fn(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("signrec: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except (FileNotFoundError, ValueError, OSError, KeyError) as e:
        print(f"signrec {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

