"""The store's manifest schema: one row per clip, one meaning per column.

`manifest.csv` in a store folder has these columns first, then any extra columns a source brought along
(`wlasl100`, `video_id`, `signer_fold`, ...), kept as they came:

    path          the clip's array, relative to the store (`<gloss folder>/<id>.npy`)
    id            the clip's name, unique in the store
    gloss         the sign, as its source spells it ("thank you", not the folder name "thank_you")
    signer        who signed it, when known (WLASL's signer_id, a participant id, a person's folder)
    split         the source's own split when it has one: train, val or test
    source        where the clip came from (a video, a keypoint file)
    dataset       the name of the source folder (several sources can share one store)
    status        ok, failed or no_person; only ok rows are clips
    error         why a clip failed
    frames        number of frames
    fps           frames per second of the video, when known
    frame_start   first frame taken from the video (1-based), frame_end last one (-1 = to the end)
    parts         the layout parts stored, e.g. "left_hand+right_hand" (the array holds only these)
    dtype         float32 or float16
    pose, face, left_hand, right_hand   share of frames in which each part was found (0 when not stored)

Nothing else in signrec knows these names: readers get `Clip`s, writers give keyword values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import layout

MANIFEST_NAME = "manifest.csv"
STATUSES = ("ok", "failed", "no_person")
SPLITS = ("train", "val", "test")
DTYPES = ("float32", "float16")
COLUMNS = [
    "path", "id", "gloss", "signer", "split", "source", "dataset", "status", "error", "frames", "fps",
    "frame_start", "frame_end", "parts", "dtype", *layout.PARTS,
]  # fmt: skip
# Other spellings sources use for the same thing; read as the column on the left.
ALIASES = {"signer": ("signer_id", "participant_id"), "id": ("video_id", "wlasl_video_id", "sequence_id")}


@dataclass(frozen=True)
class Clip:
    """One stored clip: what is known about it, and where its array is. `meta` holds every column."""

    path: str
    gloss: str
    frames: int
    parts: tuple[str, ...]
    dtype: str = "float32"
    signer: str = ""
    split: str = ""
    id: str = ""
    meta: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def width(self) -> int:
        return layout.parts_width(self.parts)


def value(row: dict, column: str) -> str:
    """A column of a row, looking under the other spellings sources use for it."""
    v = row.get(column)
    if v not in (None, ""):
        return str(v)
    for other in ALIASES.get(column, ()):
        if row.get(other) not in (None, ""):
            return str(row[other])
    return ""


def order_columns(rows: list[dict]) -> list[str]:
    """The schema's columns first, then the extra ones in a stable order."""
    extra = sorted({k for r in rows for k in r} - set(COLUMNS))
    return COLUMNS + extra
