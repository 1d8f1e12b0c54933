"""ocrframe-tinyconv: a tiny backbone and a decoder with per-character confidences for ocrframe."""
from ocrframe_tinyconv.backbone import TinyConv
from ocrframe_tinyconv.decoder import ConfidenceDecoder

__all__ = ["ConfidenceDecoder", "TinyConv"]
