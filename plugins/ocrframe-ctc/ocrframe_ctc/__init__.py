"""CTC transcription (CRNN's transcription layer) as an ocrframe plugin."""
from ocrframe_ctc.beam import BeamSearchDecoder
from ocrframe_ctc.decoders import GreedyDecoder, LexiconDecoder
from ocrframe_ctc.head import CTCHead

__all__ = ["BeamSearchDecoder", "CTCHead", "GreedyDecoder", "LexiconDecoder"]
