"""Entry point module (see pyproject.toml): registers this package's components with ocrframe."""
from ocrframe import hookimpl

from ocrframe_testplugin.tinyconv import TinyConv


@hookimpl
def ocrframe_register(slots):
    slots.backbone.register_module(module=TinyConv)
