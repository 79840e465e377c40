"""The keypoint store: the one owner of how keypoints are kept on disk (see `schema` for the manifest).

Extraction and every importer write through `StoreWriter`/`write_array`; training, evaluation and prediction
read through `KeypointStore`. Nothing else knows file names or manifest columns.
"""

from .importers import ImportSummary, import_keypoints, open_or_import
from .schema import COLUMNS, MANIFEST_NAME, SPLITS, Clip
from .store import (
    KeypointStore,
    NotAStoreError,
    StoreWriter,
    check_keypoints,
    describe_folder,
    keypoints_digest,
    layout_error,
    load_array_file,
    open_store,
    write_array,
)

__all__ = [
    "COLUMNS",
    "MANIFEST_NAME",
    "SPLITS",
    "Clip",
    "ImportSummary",
    "KeypointStore",
    "NotAStoreError",
    "StoreWriter",
    "check_keypoints",
    "describe_folder",
    "import_keypoints",
    "keypoints_digest",
    "layout_error",
    "load_array_file",
    "open_or_import",
    "open_store",
    "write_array",
]
