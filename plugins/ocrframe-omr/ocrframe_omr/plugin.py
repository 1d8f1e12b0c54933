"""Entry point module: tells ocrframe what this package provides."""
from pathlib import Path

from ocrframe import hookimpl

from ocrframe_omr.datasets import EngravedMusicDataset, PrimusDataset
from ocrframe_omr.metrics import PitchSequenceMetric
from ocrframe_omr.staff import StaffNormalize


@hookimpl
def ocrframe_register(slots):
    slots.dataset.register_module(module=EngravedMusicDataset)
    slots.dataset.register_module(module=PrimusDataset)
    slots.metric.register_module(module=PitchSequenceMetric)
    slots.transform.register_module(module=StaffNormalize)


@hookimpl
def ocrframe_models():
    """The released OMR model(s): a model card each, its weights beside it (ocrframe_omr/models/)."""
    return sorted((Path(__file__).parent / "models").glob("*.md"))
