"""Evaluation never serves one sample in place of another: an unreadable image keeps its place,
is read as nothing and counts as an error, and the log says how many there were."""
from __future__ import annotations

import json

import pytest

from conftest import CONFIG, REPO, write_word_folder
from ocrframe.cli import main
from ocrframe.metrics import WordMetric
from ocrframe.data.build import build_dataset, use_data
from ocrframe.runner import load_config

WORDS = ["open", "sesame", "mile"]


@pytest.fixture
def folder_with_a_broken_image(tmp_path):
    folder = write_word_folder(tmp_path / "words", WORDS)
    (folder / "img_001.png").write_bytes(b"")  # zero bytes
    return folder


def test_an_evaluation_dataset_marks_an_unreadable_image_instead_of_serving_the_next(folder_with_a_broken_image,
                                                                                      tmp_path):
    cfg = load_config(str(CONFIG), work_dir=str(tmp_path / "w"))
    use_data(cfg.test_dataloader, [str(folder_with_a_broken_image)], cfg)
    dataset = build_dataset(cfg.test_dataloader.dataset)
    samples = [dataset[i] for i in range(len(dataset))]
    assert [s["key"] for s in samples] == ["img_000.png", "img_001.png", "img_002.png"]
    assert [s["text"] for s in samples] == WORDS
    assert [s.get("unreadable") for s in samples] == [None, "undecodable image", None]


def test_training_still_skips_an_unreadable_image(folder_with_a_broken_image, tmp_path):
    cfg = load_config(str(CONFIG), work_dir=str(tmp_path / "w"), train_data=[str(folder_with_a_broken_image)])
    dataset = build_dataset(cfg.train_dataloader.dataset)
    assert dataset[1]["key"] == "img_002.png" and dataset.skipped.total() == 1


def test_training_on_files_shuffles_them_where_the_config_keeps_its_own_data_in_order(folder_with_a_broken_image,
                                                                                       tmp_path):
    omr_config = str(REPO / "configs" / "crnn_omr.py")  # its engraved snippets are drawn in order
    assert load_config(omr_config, work_dir=str(tmp_path / "w")).train_dataloader.sampler.shuffle is False
    cfg = load_config(omr_config, work_dir=str(tmp_path / "w"), train_data=[str(folder_with_a_broken_image)])
    assert cfg.train_dataloader.sampler.shuffle is True


def test_the_word_metric_counts_an_unreadable_image_as_an_error():
    metric = WordMetric()
    # even where an empty reading would match: a truth without alphanumerics
    metric.process(None, [dict(pred="open", gt="open", key="a"),
                          dict(pred="", gt="!!", key="b", unreadable="undecodable image")])
    scores = metric.compute_metrics(metric.results)
    assert scores["word_acc"] == scores["word_acc_exact"] == 0.5


def test_ocrframe_test_counts_the_unreadable_image_in_the_denominator(checkpoint, folder_with_a_broken_image,
                                                                       tmp_path, capsys):
    work_dir = tmp_path / "t"
    assert main(["test", str(CONFIG), str(checkpoint), "--data", str(folder_with_a_broken_image), "--work-dir",
                 str(work_dir), "--cfg-options", "test_dataloader.num_workers=0"]) == 0
    out = capsys.readouterr().out
    metrics = json.loads(out.strip().splitlines()[-1])
    assert metrics["word_acc"] <= 2 / 3
    (log,) = work_dir.glob("*/*.log")
    text = log.read_text()
    assert "1 of 3 images were unreadable and count as errors (e.g. img_001.png)" in text
    assert "misreadings among 3 test images" in text  # the worst-errors grid counts it once too
