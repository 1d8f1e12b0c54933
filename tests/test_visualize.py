"""Pictures: `ocrframe browse` on every kind of dataset, and the grid layout behind it."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import CONFIG, random_words, write_word_folder
from ocrframe.cli import main
from ocrframe.data.synthetic import SynthWordDataset
from ocrframe.visualize import Cell, dataset_cells, draw_grid, to_pil


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


def test_browse_an_lmdb_shows_its_labels(train_lmdb, tmp_path, capsys):
    assert main(["browse", str(train_lmdb), "--num", "8", "--out", str(tmp_path / "grid.png"),
                 "--config", str(CONFIG)]) == 0
    assert f"wrote {tmp_path / 'grid.png'}: 8 of 64 samples" in capsys.readouterr().out
    with Image.open(tmp_path / "grid.png") as grid:
        assert np.asarray(grid.convert("L")).std() > 10


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
    cells, failed = dataset_cells(dataset, num=3)
    assert failed == 0
    assert [c.lines[0][0] for c in cells] == [dataset.clean_label(dataset.load(i)["text"], "") for i in range(3)]
    assert [c.lines[1][0] for c in cells] == ["7-0", "7-1", "7-2"]


def test_browse_a_config_split_as_the_model_sees_it(tmp_path, capsys):
    assert main(["browse", str(CONFIG), "--split", "val", "--num", "2", "--as-model-sees-it",
                 "--out", str(tmp_path / "val.png")]) == 0
    assert "2 of 1000 samples" in capsys.readouterr().out


def test_browse_music_from_the_omr_config_shows_pitch_labels(tmp_path, capsys):
    omr_config = CONFIG.parent / "crnn_omr.py"
    assert main(["browse", str(omr_config), "--split", "test", "--num", "2", "--out", str(tmp_path / "omr.png")]) == 0
    assert "2 of " in capsys.readouterr().out


def test_browse_names_a_missing_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="pass --config CONFIG"):
        main(["browse", str(tmp_path), "--config", str(tmp_path / "nope.py")])
