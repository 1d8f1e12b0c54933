"""Dataset configs from data paths (LMDBs, gt.txt folders, a config's own folder dataset), marked
for evaluation where every sample must count, and built outside a Runner."""
from __future__ import annotations

from pathlib import Path

from mmengine.config import Config


def use_data(dataloader: dict, paths: list[str], cfg: Config) -> None:
    """Point an evaluation dataloader at LMDBs / folders, batching by image width."""
    dataloader.dataset = mark_for_evaluation(dataset_for(paths, cfg, cfg.test_pipeline))
    if len(paths) == 1:  # a ConcatDataset cannot report aspect ratios
        dataloader.batch_sampler = dict(type="WidthBucketBatchSampler")


def dataset_for(paths: list[str], cfg: Config, pipeline) -> dict:
    """Dataset config for data paths (several are concatenated): an LMDB, a folder read by the
    config's ``folder_dataset`` (e.g. a PrIMuS folder), or a folder with a gt.txt."""
    datasets = []
    folder_dataset = cfg.get("folder_dataset")
    for path in paths:
        p = Path(path)
        common = dict(charset=cfg.charset, pipeline=pipeline)
        if (p / "data.mdb").is_file() or (p.is_file() and p.suffix == ".mdb"):
            datasets.append(dict(type="LMDBDataset", path=path, **common))
        elif p.is_dir() and folder_dataset:
            datasets.append(dict(folder_dataset, root=path, **common))
        elif (p / "gt.txt").is_file():
            datasets.append(dict(type="GtFolderDataset", root=path, **common))
        else:
            raise FileNotFoundError(
                f"dataset {path} is not an LMDB (no data.mdb) nor a folder with a gt.txt"
                + ("" if p.exists() else " (it does not exist)")
                + "; tools/create_lmdb.py makes an LMDB from a gt.txt folder")
    if len(datasets) == 1:
        return datasets[0]
    return dict(type="ConcatDataset", datasets=datasets, ignore_keys=["name"])


def mark_for_evaluation(dataset_cfg):
    """Evaluation counts every sample once: datasets (a ConcatDataset's parts too) that would skip
    an unreadable image and serve the next one instead mark it (``on_bad_sample="mark"``: it
    counts as an error). "error" is kept; datasets without the setting are left as they are."""
    from ocrframe.data.base import OcrDataset
    from ocrframe.registry import DATASETS

    for d in [dataset_cfg, *dataset_cfg.get("datasets", [])]:
        kind = DATASETS.get(d["type"]) if isinstance(d.get("type"), str) else d.get("type")
        if isinstance(kind, type) and issubclass(kind, OcrDataset) and d.get("on_bad_sample", "skip") == "skip":
            d["on_bad_sample"] = "mark"
    return dataset_cfg


def build_dataset(dataset_cfg, raw: bool = False):
    """Build a dataset config (a ConcatDataset's parts included). ``raw`` leaves the pipelines
    out: samples then hold the image as loaded (a PIL image) and its label, as a user sees them."""
    from mmengine.registry import init_default_scope

    from ocrframe.registry import DATASETS

    init_default_scope("ocrframe")  # datasets nested in mmengine's (ConcatDataset) are looked up here
    dataset_cfg = Config(dict(dataset=dataset_cfg)).dataset.to_dict()  # a copy, whatever it was given as
    if raw:
        for d in [dataset_cfg, *dataset_cfg.get("datasets", [])]:
            if "pipeline" in d:
                d["pipeline"] = []
    return DATASETS.build(dataset_cfg)
