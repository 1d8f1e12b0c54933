"""The core's own components and released models, published through the plugin hooks like any plugin's."""
from pathlib import Path

from ocrframe import distributed, engine, loops, optim, recipe  # noqa: F401  (register the runner-level pieces in scope ocrframe)
from ocrframe.data.gt_folder import GtFolderDataset
from ocrframe.data.lmdb_dataset import LMDBDataset
from ocrframe.data.synthetic import SynthWordDataset
from ocrframe.data.transforms import Grayscale, Resize, ToTensor
from ocrframe.metrics import WordMetric
from ocrframe.model import Recognizer
from ocrframe.plugins import hookimpl


@hookimpl
def ocrframe_register(slots):
    slots.model.register_module(module=Recognizer)
    for dataset in (LMDBDataset, GtFolderDataset, SynthWordDataset):
        slots.dataset.register_module(module=dataset)
    for transform in (Grayscale, Resize, ToTensor):
        slots.transform.register_module(module=transform)
    slots.metric.register_module(module=WordMetric)


@hookimpl
def ocrframe_models():
    return sorted((Path(__file__).parent / "models").glob("*.md"))
