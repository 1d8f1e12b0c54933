"""Entry point module: tells ocrframe what this package provides."""
from ocrframe import hookimpl

from ocrframe_vgg.vgg import VGG


@hookimpl
def ocrframe_register(slots):
    slots.backbone.register_module(module=VGG)
