"""signrec: isolated sign-language word recognition from video."""

__version__ = "0.1.0"
