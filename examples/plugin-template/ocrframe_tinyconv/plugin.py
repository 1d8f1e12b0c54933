"""The entry point module (see pyproject.toml): registers this package's components with ocrframe."""
from ocrframe import hookimpl

from ocrframe_tinyconv.backbone import TinyConv
from ocrframe_tinyconv.decoder import ConfidenceDecoder


@hookimpl
def ocrframe_register(slots):
    slots.backbone.register_module(module=TinyConv)
    slots.decoder.register_module(module=ConfidenceDecoder)
