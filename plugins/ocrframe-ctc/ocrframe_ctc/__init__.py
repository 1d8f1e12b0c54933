"""CTC transcription (CRNN's transcription layer) as an ocrframe plugin."""
from ocrframe_ctc.decoders import GreedyDecoder
from ocrframe_ctc.head import CTCHead

__all__ = ["CTCHead", "GreedyDecoder"]
