"""Entry point module: tells ocrframe what this package provides."""
from ocrframe import hookimpl

from ocrframe_ctc.beam import BeamSearchDecoder
from ocrframe_ctc.decoders import GreedyDecoder, LexiconDecoder
from ocrframe_ctc.head import CTCHead


@hookimpl
def ocrframe_register(slots):
    slots.head.register_module(module=CTCHead)
    slots.decoder.register_module(module=GreedyDecoder)
    slots.decoder.register_module(module=BeamSearchDecoder)
    slots.decoder.register_module(module=LexiconDecoder)
