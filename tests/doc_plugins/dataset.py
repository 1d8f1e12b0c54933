"""A folder with a labels.tsv of `image<TAB>label` lines (as docs/plugins.md's example)."""
from pathlib import Path

from ocrframe import OcrDataset, decode_image, hookimpl, image_aspect_ratio


class TsvDataset(OcrDataset):
    labels_cleaned = True

    def __init__(self, root: str, charset, pipeline=(), on_bad_sample: str = "skip", file: str = "labels.tsv"):
        super().__init__(charset, pipeline, on_bad_sample)
        self.root = Path(root)
        rows = [line.split("\t") for line in (self.root / file).read_text(encoding="utf-8").splitlines() if line]
        self.rows = self.scan_labels(((r[0], r[0], r[1] if len(r) > 1 else None) for r in rows), len(rows))

    def describe(self) -> str:
        return f"TSV {self.root}"

    def __len__(self) -> int:
        return len(self.rows)

    def load(self, index: int) -> dict:
        path, label = self.rows[index]
        return dict(image=decode_image(self.root / path, path, self.decode_mode), text=label, key=path)

    def aspect_ratio(self, index: int) -> float:
        return image_aspect_ratio(self.root / self.rows[index][0])


class TsvDatasetWithoutRatios(TsvDataset):
    """The same, without the optional ``aspect_ratio``: evaluation falls back to plain batches."""

    aspect_ratio = None


@hookimpl
def ocrframe_register(slots):
    slots.dataset.register_module(module=TsvDataset)
    slots.dataset.register_module(module=TsvDatasetWithoutRatios)
