"""Registers a backbone named 'SharedName'."""
from ocrframe import hookimpl

from fake_plugins.components import FakeBackbone


@hookimpl
def ocrframe_register(slots):
    slots.backbone.register_module(module=FakeBackbone, name="SharedName")
