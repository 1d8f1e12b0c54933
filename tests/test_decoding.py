"""Every image mode Pillow reads decodes to the image as shown: each is made from one reference
rendering (dark text on white), written to a real file where the format holds the mode, and
decoded by the path datasets, tools/create_lmdb.py and `ocrframe read` share."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from conftest import render_word
from ocrframe.data.base import decode_image, image_aspect_ratio
from ocrframe.data.batching import as_pil

REFERENCE = render_word("Hello", height=32).convert("L")
GRAY = np.asarray(REFERENCE)


def ink_in_alpha(mode: str) -> Image.Image:
    """Black everywhere; the text only in the alpha channel (opaque where the reference is dark)."""
    black = Image.new(mode[:-1], REFERENCE.size, 0)
    black.putalpha(Image.fromarray(255 - GRAY))
    return black


def with_exif_orientation() -> Image.Image:
    stored = REFERENCE.transpose(Image.Transpose.ROTATE_90)  # shown upright after a quarter turn clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.info["exif"] = exif.tobytes()
    return stored


# mode -> (image in that mode, file format that stores it, largest pixel difference allowed)
CASES = {
    "1": (lambda: REFERENCE.point(lambda v: 255 if v >= 128 else 0).convert("1"), "PNG", 0),
    "L": (lambda: REFERENCE, "PNG", 0),
    "LA": (lambda: ink_in_alpha("LA"), "PNG", 1),
    "P": (lambda: REFERENCE.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=256), "PNG", 2),
    "P transparent": (lambda: p_with_transparent_white(), "PNG", 2),
    "RGB": (lambda: REFERENCE.convert("RGB"), "PNG", 0),
    "RGBA": (lambda: ink_in_alpha("RGBA"), "PNG", 1),
    "CMYK": (lambda: REFERENCE.convert("RGB").convert("CMYK"), "TIFF", 2),
    "I;16": (lambda: Image.fromarray(GRAY.astype(np.uint16) * 257), "PNG", 0),
    "I": (lambda: Image.fromarray(GRAY.astype(np.int32) * 257), "TIFF", 0),
    "F": (lambda: Image.fromarray(GRAY.astype(np.float32) / 255), "TIFF", 1),
    "YCbCr": (lambda: REFERENCE.convert("RGB").convert("YCbCr"), "TIFF", 3),
    "EXIF orientation": (with_exif_orientation, "PNG", 0),
}


def p_with_transparent_white() -> Image.Image:
    """A palette image whose white is the transparent index (tRNS)."""
    image = REFERENCE.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    white = image.getpixel((0, 0))
    image.info["transparency"] = white
    return image


def expected(mode: str) -> np.ndarray:
    return GRAY if mode != "1" else np.where(GRAY >= 128, 255, 0).astype(np.uint8)


@pytest.mark.parametrize("mode", list(CASES))
def test_every_mode_decodes_to_the_reference_rendering(mode, tmp_path):
    make, fmt, tolerance = CASES[mode]
    image = make()
    path = tmp_path / f"image.{fmt.lower()}"
    image.save(path, format=fmt, **({"exif": image.info["exif"]} if "exif" in image.info else {}))
    with Image.open(path) as reopened:
        if mode not in ("EXIF orientation", "P transparent"):
            assert reopened.mode == image.mode  # the file really holds this mode
    for decoded in (decode_image(path, "key"), decode_image(path.read_bytes(), "key"), as_pil(path)):
        assert decoded.mode == "RGB" and decoded.size == REFERENCE.size
        difference = np.abs(np.asarray(decoded.convert("L"), dtype=int) - expected(mode))
        assert difference.max() <= tolerance, f"{mode}: largest difference {difference.max()}"


def test_an_image_given_in_memory_decodes_like_its_file():
    for mode, (make, _, tolerance) in CASES.items():
        decoded = as_pil(make())
        difference = np.abs(np.asarray(decoded.convert("L"), dtype=int) - expected(mode))
        assert difference.max() <= tolerance, mode


def test_the_aspect_ratio_from_the_header_follows_the_exif_orientation():
    buffer = io.BytesIO()
    image = with_exif_orientation()
    image.save(buffer, format="PNG", exif=image.info["exif"])
    assert image.width < image.height  # stored on its side
    assert image_aspect_ratio(buffer.getvalue()) == pytest.approx(REFERENCE.width / REFERENCE.height)
