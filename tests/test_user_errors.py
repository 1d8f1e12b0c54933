"""A user's mistake gets one line naming the file or setting and what to do: checkpoints of another
model, files that are not checkpoints, misspelled settings, bad numbers, unwritable outputs."""
from __future__ import annotations

import logging
import pickle
import subprocess
import sys

import pytest
from mmengine.config import Config

from conftest import CONFIG, TINY_RUN, render_word, save_checkpoint
from ocrframe.checkpoint import load_checkpoint
from ocrframe.cli import main
from ocrframe.inference import Reader
from ocrframe.registry import MODELS
from ocrframe.runner import load_config


@pytest.fixture(scope="module")
def other_model_checkpoint(tmp_path_factory):
    """Weights of a CRNN with a smaller BiLSTM, stored with the paper config: they do not fit it."""
    cfg = Config.fromfile(str(CONFIG))
    model = MODELS.build(dict(cfg.model, sequence_encoder=dict(type="BiLSTM", hidden_size=32, num_layers=2)))
    return save_checkpoint(model, cfg, tmp_path_factory.mktemp("other") / "other.pth")


def test_weights_of_another_model_are_an_error_naming_the_keys(other_model_checkpoint):
    with pytest.raises(ValueError, match=r"other.pth does not match the model of the config: weights \d+ of another "
                                         r"shape: sequence_encoder\..*Pass the config it was trained with"):
        Reader.from_checkpoint(other_model_checkpoint)


def test_ocrframe_test_refuses_another_models_weights_unless_told_to_load_what_fits(other_model_checkpoint, tmp_path):
    folder = tmp_path / "words"
    folder.mkdir()
    render_word("open").save(folder / "a.png")
    (folder / "gt.txt").write_text("a.png\topen\n")
    command = ["test", str(CONFIG), str(other_model_checkpoint), "--data", str(folder), "--work-dir", str(tmp_path / "w"),
               "--cfg-options", "test_dataloader.num_workers=0"]
    with pytest.raises(ValueError, match=r"does not match the model of the config.*--cfg-options load_partial=True"):
        main(command)
    assert main([*command, "load_partial=True"]) == 0
    log = sorted((tmp_path / "w").glob("*/*.log"))[-1]  # the second run's
    assert "loaded the weights that match the model; skipped" in log.read_text()


def test_the_lexicon_table_also_refuses_another_models_weights_unless_told_to_load_what_fits(other_model_checkpoint,
                                                                                             tmp_path):
    folder = tmp_path / "words"
    folder.mkdir()
    render_word("open").save(folder / "a.png")
    (folder / "gt.txt").write_text("a.png\topen\n")
    command = ["test", str(CONFIG), str(other_model_checkpoint), "--data", str(folder), "--lexicon", "none",
               "--work-dir", str(tmp_path / "w"), "--cfg-options", "test_dataloader.num_workers=0"]
    with pytest.raises(ValueError, match=r"does not match the model of the config.*--cfg-options load_partial=True"):
        main(command)
    assert main([*command, "load_partial=True"]) == 0


def test_resuming_from_a_checkpoint_without_training_state_says_so(other_model_checkpoint, train_lmdb, tmp_path):
    with pytest.raises(ValueError, match=r"cannot resume from .*other.pth: it holds weights but no training state.*"
                                         r"--cfg-options load_from="):
        main(["train", str(CONFIG), "--work-dir", str(tmp_path / "w"), "--data", str(train_lmdb), "--no-test",
              "--resume", str(other_model_checkpoint), "--cfg-options", *TINY_RUN])


def test_a_misspelled_top_level_setting_is_an_error_with_a_suggestion(tmp_path):
    with pytest.raises(ValueError, match=r"--cfg-options trian_cfg.max_iters: .* has no setting 'trian_cfg'; "
                                         r"did you mean 'train_cfg'"):
        load_config(str(CONFIG), work_dir=str(tmp_path), cfg_options={"trian_cfg.max_iters": 2})
    cfg = load_config(str(CONFIG), work_dir=str(tmp_path), cfg_options={"train_cfg.max_iters": 2, "load_partial": True})
    assert cfg.train_cfg.max_iters == 2


def test_settings_mmengine_reads_from_the_config_are_accepted(tmp_path):
    """docs/distributed.md: `--cfg-options sync_bn=torch`; mmengine's Runner reads it from the config, not
    as an argument."""
    cfg = load_config(str(CONFIG), work_dir=str(tmp_path), cfg_options={"sync_bn": "torch",
                                                                        "find_unused_parameters": True})
    assert cfg.sync_bn == "torch" and cfg.find_unused_parameters is True


@pytest.mark.parametrize("content, message", [
    (b"", r"checkpoint .*bad.pth is empty"),
    (b"this is a text file, not weights\n", r"bad.pth is not a checkpoint \(it looks like text\)"),
    (b"PK\x03\x04 a zip archive cut short", r"bad.pth is not a checkpoint torch can read \(truncated"),
])
def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path, content, message):
    (tmp_path / "bad.pth").write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_checkpoint(tmp_path / "bad.pth")


@pytest.mark.parametrize("name, looks_like", [("word.png", "a PNG image"), ("config.py", "text"), ("card.md", "text")])
def test_an_image_or_a_config_in_the_checkpoints_place_is_named_not_refused_as_a_pickle(tmp_path, name, looks_like):
    """`ocrframe read word.png crnn-en`: torch.load calls such files pickles it refuses to load."""
    render_word("open").save(tmp_path / "word.png")
    (tmp_path / "config.py").write_text(CONFIG.read_text())
    (tmp_path / "card.md").write_text("# notes\n")
    with pytest.raises(ValueError, match=rf"{name} is not a checkpoint \(it looks like {looks_like}\).*"
                                         r"`ocrframe read CHECKPOINT_OR_MODEL IMAGE\.\.\.`"):
        load_checkpoint(tmp_path / name)


def test_a_refused_pickle_names_what_it_holds_without_advising_to_load_it_unsafely(tmp_path):
    import os

    import torch

    class RunsACommand:
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save({"meta": RunsACommand()}, tmp_path / "evil.pth")
    with pytest.raises(pickle.UnpicklingError, match=r"refused to load .*details: .*GLOBAL (posix|os)\.system") as info:
        load_checkpoint(tmp_path / "evil.pth")
    assert "weights_only" not in str(info.value)


def test_errors_of_the_command_line_are_one_line(tmp_path):
    (tmp_path / "notes.pth").write_text("this is a text file, not weights\n")
    render_word("open").save(tmp_path / "a.png")
    result = subprocess.run([sys.executable, "-m", "ocrframe.cli", "read", str(tmp_path / "notes.pth"),
                             str(tmp_path / "a.png")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"ocrframe read: error: {tmp_path / 'notes.pth'} is not "
                                                             "a checkpoint")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("size", ["0", "-3", "two"])
def test_a_batch_size_below_one_is_refused_by_the_parser(checkpoint, size, capsys):
    with pytest.raises(SystemExit):
        main(["test", str(CONFIG), str(checkpoint), "--lexicon", "none", "--batch-size", size])
    assert f"--batch-size: expected a whole number of at least 1, not '{size}'" in capsys.readouterr().err


def test_an_unwritable_export_path_is_refused_before_exporting(checkpoint, tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(IsADirectoryError, match=r"--onnx file .* is a directory"):
        main(["export", str(checkpoint), "--onnx", str(tmp_path)])
    with pytest.raises(PermissionError, match=r"cannot write the --onnx file .*a_file/out.onnx"):
        main(["export", str(checkpoint), "--onnx", str(tmp_path / "a_file" / "out.onnx")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]  # nothing half-written


def test_stale_temporary_files_of_dead_processes_are_removed(tmp_path):
    import os

    from ocrframe.fileio import remove_stale_temporaries

    dead, alive = tmp_path / ".iter_4.pth.tmp-999999999", tmp_path / f".iter_6.pth.tmp-{os.getpid()}"
    dead.write_bytes(b"x")
    alive.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert alive.exists() and not dead.exists()


def test_an_unknown_schedule_is_an_error_listing_the_config_s_schedules(tmp_path):
    with pytest.raises(ValueError, match=r"has no schedule 'fast'; it has: paper, cpu, cpu-fp32, cpu-long, finetune"):
        load_config(str(CONFIG), work_dir=str(tmp_path), schedule="fast")


# -- `ocrframe read`: nothing left out unsaid -------------------------------------------------

READ = ["--precision", "fp32", "--runtime", "torch", "--device", "cpu"]  # nothing timed or exported


def test_read_says_why_images_were_unreadable_and_how_many_labelled_ones_it_scored(tmp_path, capsys):
    render_word("open").save(tmp_path / "a.png")
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "b.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "c.png").write_text("not an image")
    (tmp_path / "gt.txt").write_text("a.png\topen\nb.png\tcut\nc.png\ttext\n")
    assert main(["read", "crnn-en", str(tmp_path), *READ]) == 1
    err = capsys.readouterr().err
    assert "accuracy on 1 of 3 labelled images (2 unreadable): word accuracy" in err
    b, c = tmp_path / "b.png", tmp_path / "c.png"
    assert f"2 undecodable image (e.g. {b}, {c}; {b}: image file is truncated" in err


def test_read_frames_without_json_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="--frames needs --json"):
        main(["read", "crnn-en", str(tmp_path / "a.png"), "--frames", *READ])


def test_a_folder_to_read_gives_every_common_image_format_and_counts_the_other_files(tmp_path, capsys):
    from ocrframe.cli import read_inputs

    for name in ("a.png", "b.pgm", "c.jfif", "d.ppm", "e.TIF", "f", "notes.txt"):
        (tmp_path / name).write_bytes(b"")  # chosen by extension: nothing is decoded yet
    assert [path.name for path, _, _ in read_inputs([tmp_path])] == ["a.png", "b.pgm", "c.jfif", "d.ppm", "e.TIF"]
    assert f"{tmp_path}: left out 2 file(s) that are not images by their extension, e.g. f" in capsys.readouterr().err


def test_read_decodes_a_bounded_number_of_pixels_at_a_time(tmp_path, monkeypatch):
    import ocrframe.cli as cli
    from ocrframe.data.base import SkipCounter

    for name in "abc":
        render_word("open").save(tmp_path / f"{name}.png")
    monkeypatch.setattr(cli, "READ_PIXELS", 2 * render_word("open").width * render_word("open").height)
    chunks = cli.decoded_chunks([(tmp_path / f"{name}.png", None, None) for name in "abc"], SkipCounter())
    assert [len(images) for _, images in chunks] == [2, 1]


def test_a_config_that_prepares_images_otherwise_than_the_model_was_trained_is_warned_of(
        reading_checkpoint, reading_config, tmp_path, caplog):
    def load(config):
        with caplog.at_level(logging.WARNING, logger="ocrframe.checkpoint"):
            Reader.from_checkpoint(reading_checkpoint, config=config, precision="fp32", runtime="torch")

    load(reading_config)
    assert "prepares images otherwise" not in caplog.text  # the config it was trained with
    cfg = Config.fromfile(str(reading_config))
    next(step for step in cfg.test_pipeline if step["type"] == "Resize")["min_width"] = 64
    other = tmp_path / "narrower.py"
    cfg.dump(str(other))
    load(other)
    assert "(Resize min_width=64, trained with 100); images are prepared as the config says" in caplog.text
    caplog.clear()
    cfg.test_pipeline = cfg.test_pipeline[1:]
    cfg.dump(str(other))
    load(other)
    assert "(steps ['Resize', 'ToTensor'], trained with ['Grayscale', 'Resize', 'ToTensor'])" in caplog.text


def test_a_pipeline_compares_as_data_tuples_alike_with_the_lists_a_stored_config_holds():
    from ocrframe.checkpoint import pipeline_difference

    stored = [{"type": "Resize", "size": [32, 100]}]
    assert pipeline_difference([dict(type="Resize", size=(32, 100))], stored) == ""
    assert pipeline_difference([dict(type="Resize", size=(32, 64))], stored) == \
        "Resize size=[32, 64], trained with [32, 100]"
    assert pipeline_difference([print], stored) == f"steps [{str(print)!r}], trained with ['Resize']"
