"""Folders of images with a ``gt.txt`` (``relative/path<TAB>label[<TAB>lexicon words]``)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ocrframe.data.base import OcrDataset, decode_image, image_aspect_ratio


@dataclass(frozen=True)
class GtEntry:
    path: str
    label: str
    lexicon: tuple[str, ...] | None = None


def read_gt_lines(gt_file: Path) -> list[GtEntry]:
    """Parse a gt.txt; a malformed line is an error naming the file and line number."""
    gt_file = Path(gt_file)
    if not gt_file.is_file():
        raise FileNotFoundError(f"ground-truth file {gt_file} does not exist (lines: relative/path<TAB>label)")
    entries = []
    for number, line in enumerate(gt_file.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise ValueError(f"{gt_file}:{number}: expected 'relative/path<TAB>label', got {line!r}")
        lexicon = tuple(parts[2].split()) if len(parts) > 2 and parts[2].strip() else None
        entries.append(GtEntry(parts[0], parts[1], lexicon))
    return entries


class GtFolderDataset(OcrDataset):
    """Images listed in ``root/gt.txt`` (or ``gt_file``), read as they are needed."""

    labels_cleaned = True  # scan_labels cleaned them once: not again for every sample

    def __init__(self, root: str, charset, pipeline=(), gt_file: str = "gt.txt", on_bad_sample: str = "skip"):
        super().__init__(charset, pipeline, on_bad_sample)
        self.root = Path(root)
        entries = read_gt_lines(self.root / gt_file)
        self.entries = [replace(e, label=clean)
                        for e, clean in self.scan_labels(((e, e.path, e.label) for e in entries), len(entries))]

    def describe(self) -> str:
        return f"folder {self.root}"

    def __len__(self) -> int:
        return len(self.entries)

    def sample_key(self, index: int) -> str:
        return self.entries[index].path

    def sample_label(self, index: int) -> str:
        return self.entries[index].label

    def aspect_ratio(self, index: int) -> float:
        return image_aspect_ratio(self.root / self.entries[index].path)

    def load(self, index: int) -> dict:
        entry = self.entries[index]
        sample = dict(image=decode_image(self.root / entry.path, entry.path, self.decode_mode), text=entry.label,
                      key=entry.path)
        if entry.lexicon:
            sample["lexicon"] = list(entry.lexicon)
        return sample
