"""Images as users give them to the Reader and `ocrframe read`: text on transparency whatever its
colour, arrays with alpha, 16-bit data of fewer bits, files of several pages, and the inputs that
cannot be read (empty, channels first, truncated, too large, missing), each an error naming the image."""
from __future__ import annotations

import io
import json
import logging
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from conftest import READING_WORDS, render_word
from ocrframe.cli import main
from ocrframe.data.base import BadSample, decode_image, image_aspect_ratio, image_pages
from ocrframe.data.batching import as_pil
from ocrframe.inference import Reader

GRAY = np.asarray(render_word("lemon").convert("L"))


@pytest.fixture(scope="module")
def reader(reading_checkpoint) -> Reader:
    return Reader.from_checkpoint(reading_checkpoint, precision="fp32", runtime="torch")


def ink_in_alpha(mode: str, ink: int) -> Image.Image:
    """The text in the alpha channel alone, in ``ink`` (0 black, 255 white), on full transparency."""
    image = Image.new("L", (GRAY.shape[1], GRAY.shape[0]), ink).convert(mode[:-1])
    image.putalpha(Image.fromarray(255 - GRAY))
    return image


def light_palette_text() -> Image.Image:
    """White text on black as a palette image whose black is the transparent index: the
    anti-aliased edges stay opaque greys."""
    image = ImageOps.invert(render_word("lemon")).convert("P", palette=Image.Palette.ADAPTIVE, colors=256)
    image.info["transparency"] = image.getpixel((0, 0))
    return image


def saved(image: Image.Image, path) -> Image.Image:
    image.save(path, transparency=image.info.get("transparency"))
    return Image.open(path)


@pytest.mark.parametrize("make", [
    lambda path: saved(ink_in_alpha("RGBA", 255), path),
    lambda path: saved(ink_in_alpha("LA", 255), path),
    lambda path: saved(light_palette_text(), path),
    lambda path: ink_in_alpha("RGBA", 255),
    lambda path: np.asarray(ink_in_alpha("RGBA", 255)),
], ids=["RGBA file", "LA file", "palette file", "RGBA in memory", "RGBA array"])
def test_light_text_on_transparency_shows_light_on_black(make, tmp_path):
    decoded = np.asarray(as_pil(make(tmp_path / "light.png")).convert("L"), dtype=int)
    assert np.abs((255 - decoded) - GRAY).max() <= 2  # not white on white


def test_a_picture_with_transparent_margins_keeps_white_around_it():
    # a word on white paper, pasted with transparent margins: mostly light, yet its ink is dark
    word = render_word("lemon")
    canvas = Image.new("RGBA", (word.width + 12, word.height + 12), (0, 0, 0, 0))
    canvas.paste(word, (6, 6))
    decoded = np.asarray(as_pil(canvas).convert("L"), dtype=int)
    assert (decoded[:6] == 255).all() and (decoded[:, :6] == 255).all()
    assert np.abs(decoded[6:-6, 6:-6] - GRAY).max() == 0


def test_arrays_with_alpha_and_16_bit_data_of_10_bits_read_as_their_files(reader, tmp_path):
    words = READING_WORDS[:3]
    grays = [np.asarray(render_word(word).convert("L")) for word in words]
    # dark text in the alpha channel, its transparent pixels stored black (as many tools store them)
    rgba = np.dstack([np.zeros_like(grays[0])] * 3 + [255 - grays[0]])
    la = np.dstack([np.zeros_like(grays[1]), 255 - grays[1]])
    ten_bits = tmp_path / "ten_bits.png"
    Image.fromarray((grays[2].astype(np.uint16) * 1023 // 255).astype(np.uint16)).save(ten_bits)
    assert Image.open(ten_bits).mode == "I;16"  # the file holds 16-bit gray with values 0..1023
    assert [p.text for p in reader.read([rgba, la, ten_bits])] == words
    full_range = Image.fromarray(grays[2].astype(np.uint16) * 257)  # as before: scaled from 0..65535
    assert np.array_equal(np.asarray(as_pil(full_range).convert("L")), grays[2])


@pytest.mark.parametrize("empty", [np.zeros((0, 32), np.uint8), np.zeros((32, 0, 3), np.uint8),
                                   Image.new("RGB", (0, 32))], ids=["no rows", "no columns", "PIL"])
def test_an_empty_image_is_an_error_naming_it(reader, empty):
    height, width = (empty.shape[:2] if isinstance(empty, np.ndarray) else (empty.height, empty.width))
    with pytest.raises(ValueError, match=rf"image 1: empty image \({width} pixels wide, {height} high"):
        reader.read([render_word("open"), empty])


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_a_channels_first_array_is_an_error_saying_how_to_turn_it(channels):
    array = np.asarray(render_word("open").convert("RGBA"))[..., :channels].transpose(2, 0, 1)
    with pytest.raises(ValueError, match=r"image 2: .*channels last.*array\.transpose\(1, 2, 0\)"):
        as_pil(array, 2)


def test_a_truncated_file_opened_by_the_caller_is_an_error_naming_it(reader, tmp_path):
    path = tmp_path / "word.png"
    render_word("open").save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"image 1: undecodable image \(image file is truncated"):
        reader.read([render_word("open"), Image.open(path)])


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels, with no pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_read_skips_and_counts_an_image_over_pillows_size_limit(reading_checkpoint, tmp_path, capsys):
    bomb = tmp_path / "huge.png"
    bomb.write_bytes(png_header_only(20000, 20000))  # 4e8 pixels, over twice Image.MAX_IMAGE_PIXELS
    word = tmp_path / "open.png"
    render_word("open").save(word)
    assert image_aspect_ratio(bomb) == 1.0  # a dataset's width buckets do not fail on it either
    assert main(["read", str(reading_checkpoint), str(bomb), str(word), "--precision", "fp32",
                 "--runtime", "torch"]) == 1
    captured = capsys.readouterr()
    assert "open" in captured.out and "huge.png" not in captured.out
    assert "skipped 1 unreadable image(s): 1 image over Pillow's size limit (PIL.Image.MAX_IMAGE_PIXELS" \
        in captured.err


def test_a_missing_file_is_a_value_error(reader, tmp_path):
    with pytest.raises(ValueError, match="missing.png: missing image file"):
        reader.read([tmp_path / "missing.png"])


def test_a_grayscale_pipeline_refuses_a_png_over_the_limit_too(monkeypatch):
    buffer = io.BytesIO()
    render_word("open").convert("L").save(buffer, format="PNG")  # 8-bit gray: decoded by OpenCV if at all
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the image holds over twice as many pixels
    with pytest.raises(BadSample, match=r"image over Pillow's size limit \(PIL.Image.MAX_IMAGE_PIXELS = 1000"):
        decode_image(buffer.getvalue(), "key", mode="L")


@pytest.fixture
def two_page_tiff(tmp_path):
    """A TIFF of two pages: "open", then "lemon"."""
    path = tmp_path / "words.tif"
    render_word("open").save(path, save_all=True, append_images=[render_word("lemon")])
    return path


def test_read_reads_every_page_of_a_multi_page_file_on_its_own_line(reading_checkpoint, two_page_tiff, capsys):
    single = two_page_tiff.parent / "tide.png"
    render_word("tide").save(single)
    read = ["--precision", "fp32", "--runtime", "torch"]
    assert main(["read", str(reading_checkpoint), str(two_page_tiff), str(single), *read]) == 0
    rows = [line.split("\t")[:2] for line in capsys.readouterr().out.splitlines()]
    assert rows == [[f"{two_page_tiff}[page 1/2]", "open"], [f"{two_page_tiff}[page 2/2]", "lemon"],
                    [str(single), "tide"]]
    assert main(["read", str(reading_checkpoint), str(two_page_tiff.parent), "--json", *read]) == 0  # a folder
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["image"], r.get("page"), r.get("pages"), r["text"]) for r in records] == [
        (str(single), None, None, "tide"), (str(two_page_tiff), 1, 2, "open"), (str(two_page_tiff), 2, 2, "lemon")]


def test_a_gt_txt_line_labels_its_files_first_page(reading_checkpoint, two_page_tiff, capsys):
    (two_page_tiff.parent / "gt.txt").write_text(f"{two_page_tiff.name}\topen\n")
    assert main(["read", str(reading_checkpoint), str(two_page_tiff.parent / "gt.txt"), "--precision", "fp32",
                 "--runtime", "torch"]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].split("\t")[:2] == [str(two_page_tiff), "open"]
    assert "word accuracy 100.0%" in captured.err


def test_a_jpeg_with_a_second_picture_inside_is_one_image(tmp_path):
    path = tmp_path / "photo.jpg"
    render_word("open").save(path, save_all=True, append_images=[render_word("lemon")], format="MPO")
    assert Image.open(path).n_frames == 2  # a camera's preview, say: Pillow gives it as a frame
    assert image_pages(path) == 1


def test_the_reader_given_a_multi_page_file_reads_its_first_page_and_says_so(reader, two_page_tiff, caplog):
    with caplog.at_level(logging.WARNING, logger="ocrframe.data"):
        assert [p.text for p in reader.read([two_page_tiff])] == ["open"]
    assert f"{two_page_tiff} holds 2 pages (or frames); reading the first" in caplog.text


def test_a_page_past_the_last_is_an_error_naming_the_count(two_page_tiff):
    assert decode_image(two_page_tiff, "words.tif", page=1).size == render_word("lemon").size
    with pytest.raises(BadSample, match=r"words.tif: no such page \(page 2 counting from 0 of a file of 2 page"):
        decode_image(two_page_tiff, "words.tif", page=2)
