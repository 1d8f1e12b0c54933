"""A plugin whose registration hook raises after registering some components."""
from ocrframe import hookimpl

from fake_plugins.components import FakeBackbone, FakeEncoder


@hookimpl
def ocrframe_register(slots):
    slots.sequence_encoder.register_module(module=FakeEncoder, name="MidwayEncoder")
    slots.backbone.register_module(module=FakeBackbone, name="MidwayBackbone")
    raise RuntimeError("registration blew up halfway")
