"""Entry point module: tells ocrframe what this package provides."""
from ocrframe import hookimpl

from ocrframe_resnet.resnet import SmallResNet


@hookimpl
def ocrframe_register(slots):
    slots.backbone.register_module(module=SmallResNet)
