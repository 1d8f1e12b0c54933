"""Resume from any checkpoint of a run: every hook's state comes back (TimeBudgetHook's clocks and
plan), the validation of the checkpoint's iteration is not lost, and the resumed run ends exactly
as the uninterrupted one. Runs in this process on a fake clock, so the time budget plans alike."""
from __future__ import annotations

import argparse
import json
import re
import shutil

import pytest
import torch
from mmengine.config import DictAction
from mmengine.hooks import Hook

from conftest import CONFIG, TINY_RUN
from ocrframe import hooks as engine
from ocrframe.hooks import TimeBudgetHook
from ocrframe.checkpoint import load_checkpoint
from ocrframe.cli import main
from ocrframe.runner import build_runner, load_config

UPPER_BOUND = 40
# The CPU schedule with a small network and TimeBudgetHook (custom_hooks.4): timing iterations 2-4, a
# 30-second budget at one fake second per iteration, four validations; a checkpoint every iteration
# until the plan sets the interval to the validation interval; every checkpoint kept.
OPTIONS = [*TINY_RUN, f"train_cfg.max_iters={UPPER_BOUND}", "train_cfg.val_interval=1000",
           "default_hooks.checkpoint.interval=1", "default_hooks.checkpoint.max_keep_ckpts=-1",
           "model.sequence_encoder.hidden_size=16", "model.sequence_encoder.num_layers=1",
           "model.backbone.remove=[conv3,conv4,conv5,conv6]", "train_dataloader.batch_size=4",
           "custom_hooks.4.minutes=0.5", "custom_hooks.4.measure=[2,4]", "custom_hooks.4.validations=4",
           "param_scheduler.0.end=3", "param_scheduler.1.begin=3"]


class FakeClock(Hook):
    """time.monotonic for TimeBudgetHook: one second per training iteration, four seconds per
    validation batch (so validations change the plan), whatever the machine's speed."""

    priority = "HIGHEST"

    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.now += 1.0

    def before_val_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.now += 4.0


class SlowingClock(FakeClock):
    """One second per training iteration for the first ten, three after: as a curriculum makes them
    costlier."""

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.now += 1.0 if runner.iter < 10 else 3.0


def train(work_dir, data, monkeypatch, resume_from=None, clock=None, options=(), hooks=()):
    clock = clock or FakeClock()
    monkeypatch.setattr(engine, "time", clock)
    parser = argparse.ArgumentParser()
    parser.add_argument("--cfg-options", nargs="+", action=DictAction)
    options = parser.parse_args(["--cfg-options", *OPTIONS, *options]).cfg_options  # as the command line parses them
    cfg = load_config(str(CONFIG), schedule="cpu", work_dir=str(work_dir), cfg_options=options,
                      train_data=[str(data[0])], val_data=[str(data[1])])
    cfg.test_after_train = False
    if resume_from is not None:
        cfg.resume, cfg.load_from = True, str(resume_from)
    runner = build_runner(cfg)
    runner.register_hook(clock)
    for hook in hooks:
        runner.register_hook(hook)
    runner.train()
    return runner


def validation_steps(work_dir) -> list[int]:
    return [json.loads(line)["step"] for log in sorted(work_dir.glob("*/vis_data/scalars.json"))
            for line in log.read_text().splitlines() if "word_acc" in line]


@pytest.fixture(scope="module")
def straight(tmp_path_factory, train_lmdb, val_lmdb):
    monkeypatch = pytest.MonkeyPatch()
    work_dir = tmp_path_factory.mktemp("straight") / "work"
    try:
        runner = train(work_dir, (train_lmdb, val_lmdb), monkeypatch)
    finally:
        monkeypatch.undo()
    return work_dir, runner.iter, dict(runner.message_hub.get_info("time_budget_plan"))


def saved_iterations(work_dir) -> list[int]:
    return sorted(int(p.stem.split("_")[1]) for p in work_dir.glob("iter_*.pth"))


def test_the_uninterrupted_run_replans_after_a_validation(straight):
    work_dir, iters, plan = straight
    first = load_checkpoint(work_dir / "iter_3.pth")
    assert "time_budget_plan" not in first["message_hub"]["runtime_info"]  # timing still under way
    assert first["hook_states"]["TimeBudgetHook"]["window_iter"] == 2
    assert saved_iterations(work_dir)[:3] == [1, 2, 3]
    assert iters == plan["max_iters"] < UPPER_BOUND
    (log,) = work_dir.glob("*/*.log")
    assert re.search(r"time budget: .* iterations instead of \d+", log.read_text())  # a validation changed the plan
    # mmengine saves a checkpoint before its iteration's validation, and again after it when the best
    # score changed (here at the first validation only): resuming is checked from both kinds
    validated = [load_checkpoint(work_dir / f"iter_{i}.pth")["meta"]["validated"] for i in saved_iterations(work_dir)[3:5]]
    assert validated == [True, False]


@pytest.mark.parametrize("replan", [0.05, 1.0])
def test_the_plan_follows_iterations_that_grow_costlier(replan, tmp_path, train_lmdb, val_lmdb, monkeypatch):
    """Planned at one second per iteration, the iterations then take three: re-planning every 5 % of
    the run from the iterations since the last plan ends it within the budget; planning only at
    the start and at validations (replan=1.0) runs over."""
    clock = SlowingClock()
    runner = train(tmp_path / "work", (train_lmdb, val_lmdb), monkeypatch, clock=clock,
                   options=["custom_hooks.4.minutes=1.5", "custom_hooks.4.validations=2",
                            f"custom_hooks.4.replan={replan}"])
    elapsed = clock.now - 1000.0
    assert runner.iter == runner.message_hub.get_info("time_budget_plan")["max_iters"] < UPPER_BOUND
    if replan < 1:
        assert 0.8 * 90 < elapsed <= 90, elapsed
        # every re-plan moved the cosine decay's end with the run's: its last step is near its minimum
        # (1e-3 -> 1e-5; ending at 33, the decay planned for 40 iterations would have left ~1.2e-4)
        assert 1e-5 <= runner.optim_wrapper.get_lr()["lr"][0] < 2e-5
    else:
        assert elapsed > 95, elapsed


class JitteryClock(FakeClock):
    """Iterations alternately cheap and dear, two at a time (1 s, then 2 s): the pace of the data,
    which a run's cost per window swings with."""

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.now += 1.0 if runner.iter // 2 % 2 else 2.0


class PlanRecorder(Hook):
    def __init__(self):
        self.plans = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.plans.append(runner.train_loop.max_iters)


@pytest.mark.parametrize("windows", [1, 2])
def test_the_plan_is_paced_over_two_windows_so_it_does_not_swing_with_each(windows, tmp_path, train_lmdb, val_lmdb,
                                                                            monkeypatch):
    """Re-planning every two iterations, at the pace of one window the plan follows each swing of
    the cost (1 or 2 s per iteration); over two windows (the default) it holds (1.5 s)."""
    monkeypatch.setattr(TimeBudgetHook, "PACE_WINDOWS", windows)
    recorder = PlanRecorder()
    clock = JitteryClock()
    train(tmp_path / "work", (train_lmdb, val_lmdb), monkeypatch, clock=clock, hooks=[recorder],
          options=["custom_hooks.4.minutes=0.8", "custom_hooks.4.validations=1", "custom_hooks.4.replan=0.05"])
    planned = recorder.plans[len(recorder.plans) // 4:-2]  # after the first plans, before the end
    swing = max(planned) - min(planned)
    assert (swing >= 5) if windows == 1 else (swing <= 1), planned  # 24-40 at one window's pace, 30-31 at two


def test_the_log_says_when_max_iters_ends_the_run_before_the_budget(straight, tmp_path, train_lmdb, val_lmdb,
                                                                    monkeypatch):
    """Two minutes at one fake second per iteration fit far more than the config's 40 iterations:
    the run stops at 40, and the log says so and what to raise; the 30-second run, which fits, is not told."""
    work_dir = tmp_path / "work"
    runner = train(work_dir, (train_lmdb, val_lmdb), monkeypatch, options=["custom_hooks.4.minutes=2"])
    assert runner.iter == UPPER_BOUND
    (log,) = work_dir.glob("*/*.log")
    assert len(re.findall(rf"config's train_cfg.max_iters \({UPPER_BOUND}\) ends the run about \d+ min early",
                          log.read_text())) == 1
    (straight_log,) = straight[0].glob("*/*.log")
    assert "ends the run about" not in straight_log.read_text()


class QuickeningClock(FakeClock):
    """Three seconds per training iteration for the first eight, one after: a machine busy when
    the run starts."""

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.now += 3.0 if runner.iter < 8 else 1.0


def test_a_plan_that_grows_moves_the_validation_interval_with_it(tmp_path, train_lmdb, val_lmdb, monkeypatch):
    """Planned at three seconds per iteration, the run then goes three times as fast: the re-plans
    lengthen it, and the interval grows with them, so it still validates about as often as asked
    (keeping the first interval, it validated after every few iterations)."""
    recorder = PlanRecorder()
    work_dir = tmp_path / "work"
    runner = train(work_dir, (train_lmdb, val_lmdb), monkeypatch, clock=QuickeningClock(), hooks=[recorder],
                   options=["train_cfg.max_iters=100", "custom_hooks.4.minutes=1.5", "custom_hooks.4.validations=2"])
    first_plan = recorder.plans[4]  # planned after iteration 4
    steps = validation_steps(work_dir)
    assert 2 <= len(steps) <= 3, (steps, recorder.plans)  # 5 with the first interval kept
    assert runner.iter >= 2 * first_plan, recorder.plans
    assert runner.train_loop.val_interval >= runner.iter // 3


class SlowStartClock(FakeClock):
    """1.25 seconds per training iteration for the first eight, one after: a run planned during a
    slow start, a little short."""

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.now += 1.25 if runner.iter < 8 else 1.0


def test_a_plan_that_grows_a_little_lengthens_a_one_validation_run(tmp_path, train_lmdb, val_lmdb, monkeypatch):
    """With one validation (as in a sweep), re-plans a few iterations longer than the first plan
    lengthen the run: the interval stretches to the new end (cutting the run back to the first
    plan's interval left the budget's end unused) and the run still validates once."""
    recorder = PlanRecorder()
    work_dir = tmp_path / "work"
    runner = train(work_dir, (train_lmdb, val_lmdb), monkeypatch, clock=SlowStartClock(), hooks=[recorder],
                   options=["custom_hooks.4.validations=1"])
    first_plan = recorder.plans[4]  # planned after iteration 4, at 1.25 s per iteration
    assert first_plan < runner.iter < 1.25 * first_plan, recorder.plans  # within the interval's 25 % hold
    assert validation_steps(work_dir) == [runner.iter]


# Before timing starts, at its start, within it (where resuming used to crash), at a validation that
# re-plans, and after it.
@pytest.mark.parametrize("resume_at", [1, 2, 3, "first validation", "second validation"])
def test_a_run_resumed_from_any_checkpoint_ends_as_the_uninterrupted_one(straight, resume_at, tmp_path, train_lmdb,
                                                                         val_lmdb, monkeypatch):
    work_dir, iters, plan = straight
    at = resume_at if isinstance(resume_at, int) else saved_iterations(work_dir)[3 + ("second" in resume_at)]
    assert at < iters
    resumed_dir = tmp_path / "work"
    resumed_dir.mkdir()
    shutil.copy(work_dir / f"iter_{at}.pth", resumed_dir / f"iter_{at}.pth")
    stale = resumed_dir / f".iter_{at + 1}.pth.tmp-999999999"  # a write killed midway (no such process)
    stale.write_bytes(b"half a checkpoint")
    runner = train(resumed_dir, (train_lmdb, val_lmdb), monkeypatch, resume_from=resumed_dir / f"iter_{at}.pth")
    assert runner.iter == iters
    assert not stale.exists()
    assert runner.message_hub.get_info("time_budget_plan") == plan
    expected = load_checkpoint(work_dir / f"iter_{iters}.pth")
    got = load_checkpoint(resumed_dir / f"iter_{iters}.pth")
    assert got["hook_states"] == expected["hook_states"]
    for name, tensor in expected["state_dict"].items():
        torch.testing.assert_close(got["state_dict"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)
    # the validations of the resumed stretch, with that of the checkpoint's own iteration unless
    # the checkpoint was saved after it
    validated = load_checkpoint(work_dir / f"iter_{at}.pth")["meta"]["validated"]
    assert validation_steps(resumed_dir) == [step for step in validation_steps(work_dir)
                                             if step > at or (step == at and not validated)]


def test_resume_without_a_checkpoint_is_an_error_not_a_fresh_start(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--resume: .*holds no checkpoint to resume from.*without --resume"):
        main(["train", str(CONFIG), "--work-dir", str(tmp_path / "empty"), "--resume"])
    with pytest.raises(FileNotFoundError, match=r"--resume .*missing.pth: no such checkpoint"):
        main(["train", str(CONFIG), "--work-dir", str(tmp_path / "empty"), "--resume", str(tmp_path / "missing.pth")])
