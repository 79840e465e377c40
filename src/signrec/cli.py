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

    return TrainConfig(max_epochs=args.max_epochs, patience=args.patience, batch_size=args.batch_size, lr=args.lr,
                       seed=args.seed, progress=not args.no_progress)  # fmt: skip


def _training_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-epochs", type=int, default=2000, help="upper bound on epochs (default 2000)")
    p.add_argument("--patience", type=int, default=100, help="early stopping: epochs without a better val loss")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--activation", choices=["tanh", "relu"], default="tanh",
                   help="activation inside the LSTMs (tanh: Keras's default; relu: the popular tutorial's)")
    p.add_argument("--no-progress", action="store_true")


@command(
    "train",
    "train a model on a keypoint folder (<gloss>/<id>.npy [+ manifest.csv]) and write a run folder",
    "signrec train keypoints/ --framework torch --out runs/torch --max-epochs 300",
)
def _train(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="keypoint folder")
    p.add_argument("--out", required=True, help="run folder (split.json, history.csv, checkpoint, run.json)")
    p.add_argument("--framework", choices=["torch", "keras"], default="torch")
    p.add_argument("--model", default="lstm", help="registered model name (torch only; default lstm)")
    p.add_argument("--read", choices=["last_valid", "final"], default="last_valid",
                   help="LSTM output read at each clip's last frame, or at the final padded step (the seed's way)")
    p.add_argument("--split", help="a split.json to reuse (default: the run's own, else official or stratified)")
    _training_args(p)

    def run(args: argparse.Namespace) -> int:
        from .training.runner import train

        options = {"activation": args.activation}
        if args.framework == "torch" and args.model == "lstm":
            options["read"] = args.read
        r = train(args.data, args.out, args.framework, args.model, options, _train_config(args), split_file=args.split)
        print(f"{r.framework}/{r.model}: {r.parameters:,} parameters, {r.epochs} epochs (best {r.best_epoch}), "
              f"val accuracy {r.val_acc:.1%}, {r.seconds_per_epoch:.2f} s/epoch, split {r.split}\n"
              f"checkpoint: {r.checkpoint}")  # fmt: skip
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

