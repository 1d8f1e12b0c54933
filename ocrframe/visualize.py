"""Pictures for people: labelled image grids (a dataset's samples, a test's worst errors) and the
training curves of a work dir."""
from __future__ import annotations

import io
import json
import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ocrframe.fileio import atomic_output, atomic_write

logger = logging.getLogger("ocrframe.visualize")
FONT_FILE = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # wide Unicode coverage
INK, RED, GREY = (0, 0, 0), (200, 0, 0), (110, 110, 110)


@dataclass
class Cell:
    """One picture of a grid and the caption lines under it, each (text, colour)."""

    image: Image.Image
    lines: list[tuple[str, tuple[int, int, int]]] = field(default_factory=list)


def caption_font(size: int = 13):
    return ImageFont.truetype(str(FONT_FILE), size) if FONT_FILE.is_file() else ImageFont.load_default(size)


def draw_grid(cells: list[Cell], image_height: int = 48, max_image_width: int = 360, sheet_width: int = 1200,
              font_size: int = 13) -> Image.Image:
    """Images scaled to ``image_height`` (at most ``max_image_width`` wide), captions below, in as
    many equal columns as fit in ``sheet_width``. Rows are ``image_height`` + caption lines high."""
    if not cells:
        raise ValueError("nothing to draw: no cells")
    font = caption_font(font_size)
    scaled = [_fit(cell.image, image_height, max_image_width) for cell in cells]
    line_height = font_size + 4
    caption_width = max(int(font.getlength(text)) for cell in cells for text, _ in cell.lines or [("", INK)])
    cell_width = min(max(max(s.width for s in scaled), caption_width), max_image_width) + 12
    captions = [[(part, colour) for text, colour in cell.lines for part in _wrap(text, font, cell_width - 12)]
                for cell in cells]  # long labels (music, sentences) wrap instead of running into the next cell
    cell_height = image_height + line_height * max(len(c) for c in captions) + 10
    columns = max(1, min(len(cells), sheet_width // cell_width))
    rows = math.ceil(len(cells) / columns)
    sheet = Image.new("RGB", (columns * cell_width, rows * cell_height), "white")
    draw = ImageDraw.Draw(sheet)
    for n, (caption, image) in enumerate(zip(captions, scaled)):
        x, y = (n % columns) * cell_width + 6, (n // columns) * cell_height + 4
        sheet.paste(image, (x, y))
        for k, (text, colour) in enumerate(caption):
            draw.text((x, y + image_height + 2 + k * line_height), text, fill=colour, font=font)
    return sheet


def _wrap(text: str, font, width: int) -> list[str]:
    """Lines of at most ``width`` pixels, broken between words, or inside a word longer than that."""
    lines, line = [], ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if font.getlength(candidate) <= width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = ""
        for char in word:  # a word wider than a line is cut
            if font.getlength(line + char) > width and line:
                lines.append(line)
                line = ""
            line += char
    return lines + [line]


def save_grid(cells: list[Cell], path: str | Path, **kwargs) -> Path:
    path = Path(path)
    with atomic_output(path) as tmp:
        draw_grid(cells, **kwargs).save(tmp, format="PNG")
    return path


def _fit(image: Image.Image, height: int, max_width: int) -> Image.Image:
    width = max(1, min(max_width, round(image.width * height / max(image.height, 1))))
    return image.convert("RGB").resize((width, height), Image.BILINEAR)


def to_pil(image) -> Image.Image:
    """A PIL image from a PIL image, a uint8 array or a normalised (C, H, W) tensor (stretched to
    the full grey range, since the normalisation is the pipeline's business)."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, torch.Tensor):
        array = image.detach().float().cpu().numpy()
        array = array.transpose(1, 2, 0) if array.ndim == 3 else array
        low, high = array.min(), array.max()
        array = ((array - low) / max(high - low, 1e-6) * 255).round().astype(np.uint8)
        image = array
    array = np.asarray(image)
    return Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array)


# -- browsing a dataset ----------------------------------------------------------------------------

def dataset_cells(dataset, num: int = 48, start: int = 0, shuffle: bool = False, seed: int = 0,
                  processed: bool = False) -> tuple[list[Cell], int]:
    """Up to ``num`` samples of a dataset as grid cells captioned with their labels; returns
    (cells, samples that could not be loaded). Datasets with ``load(index)`` (every OcrDataset)
    show the image as stored, unless ``processed``: then what ``dataset[index]`` gives."""
    from ocrframe.data.base import BadSample

    total = len(dataset)
    indices = list(range(start, min(total, start + num))) if not shuffle else \
        sorted(random.Random(seed).sample(range(total), min(num, total)))
    cells, failed = [], 0
    for index in indices:
        try:
            raw = hasattr(dataset, "load") and not processed
            sample = dataset.load(index) if raw else dataset[index]
            text = sample["text"]
            if raw and hasattr(dataset, "clean_label"):
                text = dataset.clean_label(text, sample["key"])
        except BadSample as bad:
            logger.warning("sample %d: %s", index, bad)
            failed += 1
            continue
        cells.append(Cell(to_pil(sample["image"]), [(text, INK), (f"{sample.get('key', index)}", GREY)]))
    return cells, failed


def scalar_logs(work_dir: str | Path) -> list[Path]:
    """mmengine's ``vis_data/scalars.json`` of every run in a work dir (a resumed training is a
    new run), oldest first; or the one of a single run directory."""
    work_dir = Path(work_dir)
    own = work_dir / "vis_data" / "scalars.json"
    return [own] if own.is_file() else sorted(work_dir.glob("*/vis_data/scalars.json"))


def training_curves(work_dir: str | Path) -> tuple[list[dict], list[dict]]:
    """(training records, validation records) over all the runs of a work dir, by iteration; where
    runs overlap (after resuming from an earlier checkpoint) the later run wins."""
    logs = scalar_logs(work_dir)
    if not logs:
        raise FileNotFoundError(f"{work_dir} holds no training log (*/vis_data/scalars.json): is it a work dir?")
    train, val = {}, {}
    for log in logs:
        for line in log.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # the line a running training is appending

            if "loss" in record:
                train[record["iter"]] = record
            else:
                val[record.get("step")] = record
    return [train[k] for k in sorted(train)], [val[k] for k in sorted(val, key=lambda k: k or 0)]


def plot_curves(work_dir: str | Path, out: str | Path, metrics=("word_acc", "one_minus_ned")) -> Path:
    """Plot training loss against iteration and the validation metrics of a work dir's runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, val = training_curves(work_dir)
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax_loss.plot([r["iter"] for r in train], [r["loss"] for r in train], lw=0.8)
    ax_loss.set(xlabel="iteration", ylabel="CTC loss", yscale="log", title="training loss")
    for name in metrics:
        points = [(r["step"], r[name]) for r in val if name in r]
        if points:
            ax_val.plot(*zip(*points), marker="o", label=name)
    ax_val.set(xlabel="iteration", ylim=(0, 1), title="validation")
    ax_val.legend(loc="lower right")
    fig.tight_layout()
    out = Path(out)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=100)
    plt.close(fig)
    atomic_write(out, png.getvalue())
    return out
