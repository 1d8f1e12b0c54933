"""Pictures: `ocrframe browse` on every kind of dataset, and the grid layout behind it."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from conftest import CONFIG, random_words, render_word, write_word_folder
from ocrframe.cli import main
from ocrframe.data.synthetic import SynthWordDataset
from ocrframe.registry import DATASETS
from ocrframe.visualize import GREY, INK, Cell, draw_grid, to_pil


def test_grid_lays_out_equal_cells_in_as_many_columns_as_fit():
    cells = [Cell(Image.new("RGB", (100 + 20 * i, 32), "black"), [("label", (0, 0, 0)), ("key", (0, 0, 0))])
             for i in range(7)]
    sheet = draw_grid(cells, image_height=40, max_image_width=200, sheet_width=700, font_size=12)
    cell_width = 200 + 12  # the widest image (220 -> 275 at height 40) is capped at max_image_width
    columns = 700 // cell_width
    assert sheet.width == columns * cell_width == 636
    assert sheet.height == math.ceil(7 / columns) * (40 + 2 * (12 + 4) + 10)
    pixels = np.asarray(sheet.convert("L"))
    assert (pixels[4:44, 6:6 + 125] == 0).all()  # the first image, scaled to 40 high: 125 wide


def test_long_captions_wrap_inside_their_cell():
    pitches = " ".join(["C4", "E4", "G4", "C5"] * 10)
    cell = Cell(Image.new("RGB", (100, 32)), [(pitches, (0, 0, 0))])
    one_line = draw_grid([Cell(cell.image, [("C4", (0, 0, 0))])], image_height=40, max_image_width=200, font_size=12)
    wrapped = draw_grid([cell], image_height=40, max_image_width=200, font_size=12)
    assert one_line.width == 125 + 12  # the image, 40 high
    assert wrapped.width == 200 + 12  # the caption widened the cell only up to max_image_width
    assert (wrapped.height - one_line.height) % 16 == 0 and wrapped.height - one_line.height >= 3 * 16


def test_tensors_are_shown_stretched_to_the_grey_range():
    image = to_pil(torch.tensor([[[-1.0, 0.0, 1.0]]]))
    assert np.asarray(image).tolist() == [[0, 128, 255]]


def grid_pixels(path) -> np.ndarray:
    with Image.open(path) as grid:
        return np.asarray(grid.convert("RGB"))


def test_browse_an_lmdb_shows_its_images_and_labels(train_lmdb, tmp_path, capsys):
    assert main(["browse", str(train_lmdb), "--num", "8", "--start", "3", "--out", str(tmp_path / "grid.png"),
                 "--config", str(CONFIG)]) == 0
    assert f"wrote {tmp_path / 'grid.png'}: 8 of 64 samples" in capsys.readouterr().out
    # what the grid must show: samples 4..11 (keys count from 1) of the words conftest.train_lmdb
    # drew, each image as drawn, its label and its key
    cells = [Cell(render_word(word), [(word, INK), (f"image-{number:09d}", GREY)])
             for number, word in zip(range(4, 12), random_words(64, seed=1)[3:11])]
    assert np.array_equal(grid_pixels(tmp_path / "grid.png"), np.asarray(draw_grid(cells)))


def test_browse_a_gt_folder_counts_what_it_could_not_show(tmp_path, capsys):
    words = random_words(5, seed=3)
    folder = write_word_folder(tmp_path / "data", words)
    (folder / "img_002.png").write_bytes(b"broken")
    code = main(["browse", str(folder), "--out", str(tmp_path / "grid.png"), "--config", str(CONFIG)])
    assert code == 1
    assert "4 of 5 samples; 1 could not be loaded" in capsys.readouterr().out


def test_browse_a_registered_dataset_type_with_options(tmp_path, capsys):
    assert main(["browse", "SynthWordDataset", "--num", "3", "--options", "seed=7", "assets=heldout",
                 "--config", str(CONFIG), "--out", str(tmp_path / "synth.png")]) == 0
    assert "3 of 1000000 samples" in capsys.readouterr().out
    dataset = SynthWordDataset(charset=dict(symbols="0123456789abcdefghijklmnopqrstuvwxyz", case="lower"),
                               seed=7, assets="heldout")
    samples = [dataset.load(i) for i in range(3)]
    cells = [Cell(s["image"], [(s["text"].lower(), INK), (f"7-{i}", GREY)]) for i, s in enumerate(samples)]
    assert np.array_equal(grid_pixels(tmp_path / "synth.png"), np.asarray(draw_grid(cells)))


def test_browse_a_config_split_as_the_model_sees_it(tmp_path, capsys):
    assert main(["browse", str(CONFIG), "--split", "val", "--num", "2", "--as-model-sees-it",
                 "--out", str(tmp_path / "val.png")]) == 0
    assert "2 of 1000 samples" in capsys.readouterr().out
    cfg = Config.fromfile(str(CONFIG))  # the validation split: seed 1, through the test pipeline
    dataset = SynthWordDataset(charset=cfg.charset, pipeline=cfg.test_pipeline, length=1000, seed=1)
    samples = [dataset[i] for i in range(2)]
    assert all(tuple(s["image"].shape[-2:]) == (32, s["width"]) for s in samples)  # grayscale, 32 high
    cells = [Cell(to_pil(s["image"]), [(s["text"], INK), (s["key"], GREY)]) for s in samples]
    assert np.array_equal(grid_pixels(tmp_path / "val.png"), np.asarray(draw_grid(cells)))


def test_browse_music_from_the_omr_config_shows_pitch_labels(tmp_path, capsys):
    omr_config = CONFIG.parent / "crnn_omr.py"
    assert main(["browse", str(omr_config), "--split", "test", "--num", "2", "--out", str(tmp_path / "omr.png")]) == 0
    assert "2 of 2500 samples" in capsys.readouterr().out  # the five test splits of 500
    cfg = Config.fromfile(str(omr_config))
    clean = DATASETS.build(dict(type="EngravedMusicDataset", charset=cfg.charset, length=500, seed=2, style="clean"))
    samples = [clean.load(i) for i in range(2)]  # the first test split, as stored
    assert all(re.fullmatch(r"[A-G][#b]?\d( [A-G][#b]?\d)*", s["text"]) for s in samples), [s["text"] for s in samples]
    cells = [Cell(s["image"], [(clean.clean_label(s["text"], s["key"]), INK), (s["key"], GREY)]) for s in samples]
    assert np.array_equal(grid_pixels(tmp_path / "omr.png"), np.asarray(draw_grid(cells)))


def test_browse_names_a_missing_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="pass --config CONFIG"):
        main(["browse", str(tmp_path), "--config", str(tmp_path / "nope.py")])


def test_browse_names_a_mistyped_path_as_a_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data/typo_lmdb does not exist \(an LMDB, a folder"):
        main(["browse", "data/typo_lmdb", "--out", str(tmp_path / "grid.png")])
