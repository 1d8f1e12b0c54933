"""A tiny backbone for ocrframe, packaged the way any third party would package a plugin."""
from ocrframe_testplugin.tinyconv import TinyConv

__all__ = ["TinyConv"]
