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
    except (FileNotFoundError, ValueError, OSError) as e:
        print(f"signrec {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

