"""A plugin whose model card has no front matter."""
from pathlib import Path

from ocrframe import hookimpl


@hookimpl
def ocrframe_models():
    return [Path(__file__).with_name("components.py")]  # a file, but not a model card
