"""The runner through the command-line tools: train on a tiny LMDB, resume, test, infer; and the
errors a user sees for a wrong config path or a misspelled component."""
from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from mmengine.config import Config
from PIL import Image

from conftest import CONFIG, REPO, TINY_RUN, render_word
from ocrframe.checkpoint import load_checkpoint
from ocrframe.cli import main
from ocrframe.engine import training_curves
from ocrframe.registry import MODELS

def tool(name: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "tools" / f"{name}.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def train(work_dir: Path, train_lmdb: Path, val_lmdb: Path, max_iters: int, *extra,
          options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    result = tool("train", CONFIG, "--work-dir", work_dir, "--data", train_lmdb, "--val-data", val_lmdb, "--no-test",
                  *extra, "--cfg-options", f"train_cfg.max_iters={max_iters}", *TINY_RUN, *options,
                  cwd=work_dir.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def run_dirs(work_dir: Path) -> list[Path]:
    """mmengine's per-run directories (named by timestamp), oldest first."""
    return sorted(p.parent for p in work_dir.glob("*/vis_data"))


@dataclass
class Run:
    work_dir: Path
    files: set[str]     # what the work dir held right after this run
    log: str            # this run's log file
    scalars: list[dict]  # this run's vis_data/scalars.json


def finished_run(work_dir: Path) -> Run:
    log_dir = run_dirs(work_dir)[-1]
    scalars = [json.loads(line) for line in (log_dir / "vis_data" / "scalars.json").read_text().splitlines()]
    return Run(work_dir, {p.name for p in work_dir.iterdir()}, (log_dir / f"{log_dir.name}.log").read_text(), scalars)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, train_lmdb, val_lmdb) -> Run:
    """The paper config trained for 4 iterations on 64 word images, validating every 2, logging to
    TensorBoard too."""
    work_dir = tmp_path_factory.mktemp("runner") / "work"
    train(work_dir, train_lmdb, val_lmdb, 4, "--tensorboard")
    return finished_run(work_dir)


@pytest.fixture(scope="module")
def resumed_run(first_run, train_lmdb, val_lmdb) -> Run:
    """The same run resumed from its last checkpoint and continued to 6 iterations."""
    train(first_run.work_dir, train_lmdb, val_lmdb, 6, "--resume")
    return finished_run(first_run.work_dir)


def test_training_writes_log_config_checkpoints_and_curves(first_run):
    assert {"iter_2.pth", "iter_4.pth", "last_checkpoint", "curves.png", "crnn_vgg_bilstm_ctc.py"} <= first_run.files
    assert any(re.fullmatch(r"best_word_acc_iter_\d+\.pth", name) for name in first_run.files)
    assert "Saving checkpoint at 4 iterations" in first_run.log
    with Image.open(first_run.work_dir / "curves.png") as curves:
        assert curves.format == "PNG" and curves.width > 100


def test_training_config_dump_holds_the_command_line_settings(first_run, train_lmdb, val_lmdb):
    dumped = Config.fromfile(str(first_run.work_dir / "crnn_vgg_bilstm_ctc.py"))
    assert dumped.train_cfg.max_iters == 4
    assert dumped.train_dataloader.batch_size == 8
    assert dumped.train_dataloader.dataset.type == "LMDBDataset"
    assert Path(dumped.train_dataloader.dataset.path) == train_lmdb
    assert Path(dumped.val_dataloader.dataset.path) == val_lmdb
    assert dumped.schedule == "cpu"  # no GPU here: the config's CPU schedule, and the log says so
    assert "schedule: cpu" in first_run.log


def test_training_logs_loss_by_iteration_and_validation_at_its_interval(first_run):
    losses = [r for r in first_run.scalars if "loss" in r]
    validations = [r for r in first_run.scalars if "word_acc" in r]
    assert [r["iter"] for r in losses] == [1, 2, 3, 4]
    assert all(r["loss"] > 0 for r in losses)
    assert [r["step"] for r in validations] == [2, 4]  # what curves.png plots against
    assert {"word_acc", "word_acc_exact", "one_minus_ned", "cer"} <= set(validations[0])


def test_tensorboard_receives_the_same_scalars(first_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (events,) = first_run.work_dir.glob("*/vis_data/events.out.tfevents.*")
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    losses = {e.step: e.value for e in accumulator.Scalars("loss")}
    assert losses == pytest.approx({r["iter"]: r["loss"] for r in first_run.scalars if "loss" in r})
    assert [e.step for e in accumulator.Scalars("word_acc")] == [2, 4]


def test_plot_draws_the_curves_of_all_runs_of_a_work_dir(resumed_run, tmp_path):
    train_records, validations = training_curves(resumed_run.work_dir)
    assert [r["iter"] for r in train_records] == [1, 2, 3, 4, 5, 6]  # the first run and the resumed one
    assert [r["step"] for r in validations] == [2, 4, 6]
    assert main(["plot", str(resumed_run.work_dir), "--out", str(tmp_path / "curves.png")]) == 0
    with Image.open(tmp_path / "curves.png") as curves:
        assert curves.format == "PNG" and curves.width > 100


def test_plot_of_a_directory_without_logs_says_what_it_looked_for(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"holds no training log \(\*/vis_data/scalars.json\)"):
        main(["plot", str(tmp_path)])


def test_training_checkpoint_loads_safely_into_a_fresh_model(first_run):
    checkpoint = load_checkpoint(first_run.work_dir / "iter_4.pth")  # weights_only=True
    assert checkpoint["meta"]["iter"] == 4
    model = MODELS.build(Config.fromfile(str(CONFIG)).model)
    assert not model.load_state_dict(checkpoint["state_dict"], strict=True).missing_keys


def test_training_checkpoints_store_the_config_as_data_that_read_uses(first_run):
    meta = load_checkpoint(first_run.work_dir / "iter_4.pth")["meta"]
    assert meta["cfg_format"] == "json"
    assert json.loads(meta["cfg"])["model"] == Config.fromfile(str(CONFIG)).model.to_dict()


def test_resume_continues_from_the_last_checkpoint(resumed_run):
    assert re.search(r"resumed epoch: 0, iter: 4\b", resumed_run.log)
    assert "iter_6.pth" in resumed_run.files
    assert load_checkpoint(resumed_run.work_dir / "iter_6.pth")["meta"]["iter"] == 6
    assert [r["iter"] for r in resumed_run.scalars if "loss" in r] == [5, 6]


def test_resume_restores_the_optimizer_state(resumed_run):
    def adam_steps(name: str) -> set[float]:
        state = load_checkpoint(resumed_run.work_dir / name)["optimizer"]["state"]
        return {float(s["step"]) for s in state.values()}

    assert adam_steps("iter_4.pth") == {4.0}
    assert adam_steps("iter_6.pth") == {6.0}  # 2 without the restored state


def test_test_tool_prints_metrics_that_match_the_validation_of_that_checkpoint(first_run, val_lmdb, tmp_path):
    result = tool("test", CONFIG, first_run.work_dir / "iter_4.pth", "--data", val_lmdb, "--work-dir", tmp_path / "t",
                  "--cfg-options", "test_dataloader.num_workers=0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(metrics) == {"word_acc", "word_acc_exact", "one_minus_ned", "cer"}
    validation_at_4 = next(r for r in first_run.scalars if r.get("step") == 4 and "word_acc" in r)
    for name, value in metrics.items():
        assert value == pytest.approx(validation_at_4[name], abs=1e-4)
    # the worst misreadings, drawn: one cell per misread image (all 16 after 4 iterations)
    misread = round((1 - metrics["word_acc"]) * 16)
    assert f"worst_errors.png: the {min(misread, 40)} worst of {misread} misreadings among 16 test images" in result.stdout
    with Image.open(tmp_path / "t" / "worst_errors.png") as grid:
        assert grid.format == "PNG" and grid.height >= math.ceil(misread / (grid.width // 100)) * 48


def test_infer_tool_prints_a_text_and_score_per_image(first_run, tmp_path):
    images = []
    for word in ("open", "sesame"):
        render_word(word).save(tmp_path / f"{word}.png")
        images.append(tmp_path / f"{word}.png")
    result = tool("infer", first_run.work_dir / "iter_4.pth", *images, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    for line, image in zip(lines, images):
        path, text, score = line.split("\t")
        assert path == str(image)
        assert re.fullmatch(r"[0-9a-z]*", text)
        assert float(score) <= 0  # a log-probability


def test_wrong_config_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config .*no_such_config\.py does not exist"):
        main(["train", str(tmp_path / "no_such_config.py"), "--work-dir", str(tmp_path)])


def test_misspelled_component_in_cfg_options_names_the_nearest_one(train_lmdb, tmp_path):
    result = tool("train", CONFIG, "--work-dir", tmp_path / "w", "--data", train_lmdb, "--no-test",
                  "--cfg-options", "model.sequence_encoder.type=BiLTSM", cwd=tmp_path)
    assert result.returncode != 0
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("ocrframe train: error: ") and "Traceback" not in result.stderr
    assert "'BiLTSM' is not a registered sequence encoder" in error
    assert "Did you mean: 'BiLSTM'" in error


def test_time_budget_sizes_the_run_and_ends_the_cosine_decay_with_it(train_lmdb, val_lmdb, tmp_path):
    work_dir = tmp_path / "budget"
    upper_bound = 400
    train(work_dir, train_lmdb, val_lmdb, upper_bound, "--schedule", "cpu", options=(
          "train_cfg.val_interval=1000", "custom_hooks.4.minutes=0.25", "custom_hooks.4.measure=[2,4]",
          "custom_hooks.4.validations=1", "param_scheduler.0.end=3", "param_scheduler.1.begin=3"))
    run = finished_run(work_dir)
    assert re.search(r"time budget 0.25 min: [\d.]+ s per iteration here, so training runs \d+ iterations", run.log)
    last = load_checkpoint((work_dir / "last_checkpoint").read_text().strip())
    plan = last["message_hub"]["runtime_info"]["time_budget_plan"]  # a resumed run keeps it
    max_iters, interval = plan["max_iters"], plan["val_interval"]
    losses = [r for r in run.scalars if "loss" in r]
    assert 4 < max_iters < upper_bound
    assert losses[-1]["iter"] == last["meta"]["iter"] == max_iters
    assert [r["step"] for r in run.scalars if "word_acc" in r] == sorted(
        {step for step in range(interval, max_iters + 1, interval) if step >= 4} | {max_iters})
    # The cosine decay (1e-3 -> 1e-5 from iteration 3) was stretched or shrunk to end with the run:
    # the last iteration used its last value (mmengine's `end` is exclusive).
    steps = max_iters - 3
    expected = 1e-5 + (1e-3 - 1e-5) * (1 + math.cos(math.pi * (steps - 1) / steps)) / 2
    assert losses[-1]["lr"] == pytest.approx(expected)
