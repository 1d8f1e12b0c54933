"""Registers an encoder, then a different backbone under the same name as duplicate_a."""
from ocrframe import hookimpl

from fake_plugins.components import FakeBackbone, FakeEncoder


class OtherBackbone(FakeBackbone):
    pass


@hookimpl
def ocrframe_register(slots):
    slots.sequence_encoder.register_module(module=FakeEncoder, name="DuplicateBEncoder")
    slots.backbone.register_module(module=OtherBackbone, name="SharedName")
