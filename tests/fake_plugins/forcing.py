"""Registers a backbone named 'SharedName' with force=True (replacing whatever holds the name)."""
from ocrframe import hookimpl

from fake_plugins.components import FakeBackbone


class ForcedBackbone(FakeBackbone):
    pass


@hookimpl
def ocrframe_register(slots):
    slots.backbone.register_module(module=ForcedBackbone, name="SharedName", force=True)
