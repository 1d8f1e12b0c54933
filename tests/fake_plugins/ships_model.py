"""A plugin that publishes released models: the model cards in CARDS (a test fills it)."""
from ocrframe import hookimpl

CARDS: list = []


@hookimpl
def ocrframe_models():
    return list(CARDS)
