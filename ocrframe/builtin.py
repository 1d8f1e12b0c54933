"""The core's own components and released models, published through the plugin hooks like any plugin's."""
from pathlib import Path

from ocrframe.plugins import hookimpl


@hookimpl
def ocrframe_register(slots):
    from ocrframe.checkpoint import AtomicCheckpointHook, CheckpointMetaHook
    from ocrframe.data.gt_folder import GtFolderDataset
    from ocrframe.data.lmdb_dataset import LMDBDataset
    from ocrframe.data.sampler import LazyInfiniteSampler, WidthBucketBatchSampler
    from ocrframe.data.synthetic import SynthWordDataset
    from ocrframe.data.transforms import Grayscale, Resize, ToTensor, pad_collate
    from ocrframe.distributed import AnyDeviceDDP
    from ocrframe.hooks import CurvePlotHook, TimeBudgetHook, WorstErrorsHook
    from ocrframe.loops import ResumableIterBasedTrainLoop
    from ocrframe.metrics import WordMetric
    from ocrframe.model import Recognizer
    from ocrframe.optim import AutocastOptimWrapper, GuardedAmpOptimWrapper, GuardedOptimWrapper
    from ocrframe.recipe import AlignmentLossDecay, DifficultyRamp

    slots.model.register_module(module=Recognizer)
    for dataset in (LMDBDataset, GtFolderDataset, SynthWordDataset):
        slots.dataset.register_module(module=dataset)
    for transform in (Grayscale, Resize, ToTensor):
        slots.transform.register_module(module=transform)
    slots.metric.register_module(module=WordMetric)
    for hook in (CurvePlotHook, WorstErrorsHook, TimeBudgetHook, AlignmentLossDecay, DifficultyRamp,
                 AtomicCheckpointHook, CheckpointMetaHook):
        slots.hook.register_module(module=hook)
    for wrapper in (GuardedOptimWrapper, GuardedAmpOptimWrapper, AutocastOptimWrapper):
        slots.optim_wrapper.register_module(module=wrapper)
    slots.loop.register_module(module=ResumableIterBasedTrainLoop)
    for sampler in (LazyInfiniteSampler, WidthBucketBatchSampler):
        slots.data_sampler.register_module(module=sampler)
    slots.function.register_module(module=pad_collate)
    slots.model_wrapper.register_module(module=AnyDeviceDDP)


@hookimpl
def ocrframe_models():
    return sorted((Path(__file__).parent / "models").glob("*.md"))
