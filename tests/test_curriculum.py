"""The curriculum over the embedded synthetic words: at difficulty d a share 1 - d of the samples
is easy (short dictionary words, everyday typefaces, no distortion); DifficultyRamp raises d with
the iteration, and forked DataLoader workers follow it."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub

from conftest import CONFIG
from ocrframe.data.synth_text import EASY_MAX_LENGTH, WordRenderer, design_group, discover_assets
from ocrframe.data.synthetic import SynthWordDataset
from ocrframe.recipe import DifficultyRamp

RENDERS = 300


@pytest.fixture(scope="module")
def renderer():
    return WordRenderer(discover_assets("train"))


def draw(renderer, difficulty: float, monkeypatch) -> list[dict]:
    """Labels of RENDERS samples with the font and distortion each used."""
    used = {}
    real_distort = renderer._distort

    def spy_distort(*args, **kwargs):
        used["distorted"] = True
        return real_distort(*args, **kwargs)

    import ocrframe.data.synth_text as synth_text

    real_font = synth_text._font

    def spy_font(path, size):
        used["font"] = path
        return real_font(path, size)

    monkeypatch.setattr(renderer, "_distort", spy_distort)
    monkeypatch.setattr(synth_text, "_font", spy_font)
    samples = []
    for seed in range(RENDERS):
        used.clear()
        _, text, _ = renderer.render_aligned(np.random.default_rng([9, seed]), difficulty=difficulty)
        samples.append(dict(text=text, font=used["font"], distorted=used.get("distorted", False)))
    monkeypatch.undo()
    return samples


def is_easy(sample, renderer, words) -> bool:
    return (len(sample["text"]) <= EASY_MAX_LENGTH and sample["text"].lower() in words
            and not sample["distorted"] and design_group(renderer._family(sample["font"])) in
            {"helvetica", "times", "courier"})


def test_difficulty_0_draws_only_easy_samples_and_1_the_full_distribution(renderer, monkeypatch):
    words = {w.lower() for w in renderer.words}
    easy = draw(renderer, 0.0, monkeypatch)
    assert all(is_easy(s, renderer, words) for s in easy)
    full = draw(renderer, 1.0, monkeypatch)
    share_easy = np.mean([is_easy(s, renderer, words) for s in full])
    assert share_easy < 0.05  # a full sample rarely meets every easy condition by chance
    assert np.mean([len(s["text"]) > EASY_MAX_LENGTH for s in full]) > 0.15
    assert np.mean([s["distorted"] for s in full]) > 0.5


def test_difficulty_half_makes_about_half_the_samples_easy(renderer, monkeypatch):
    words = {w.lower() for w in renderer.words}
    half = draw(renderer, 0.5, monkeypatch)
    share_easy = np.mean([is_easy(s, renderer, words) for s in half])
    # binomial(300, ~0.5): 3 standard deviations are about 0.09
    assert 0.40 < share_easy < 0.62, share_easy
    full = draw(renderer, 1.0, monkeypatch)
    long_full = np.mean([len(s["text"]) > EASY_MAX_LENGTH for s in full])
    long_half = np.mean([len(s["text"]) > EASY_MAX_LENGTH for s in half])
    assert long_half == pytest.approx(long_full / 2, abs=0.08)


def test_full_difficulty_draws_the_same_samples_as_before_the_curriculum(renderer):
    """difficulty=1 consumes no extra random numbers: the default data is unchanged by the curriculum."""
    for seed in range(10):
        a = renderer.render_aligned(np.random.default_rng(seed), difficulty=1.0)
        b = renderer.render(np.random.default_rng(seed))
        assert a[1] == b[1] and np.array_equal(np.asarray(a[0]), np.asarray(b[0]))


class _Loop:
    def __init__(self, dataloader, max_iters):
        self.dataloader, self.max_iters = dataloader, max_iters


class _Runner:
    def __init__(self, dataloader, max_iters):
        self.train_loop, self.iter = _Loop(dataloader, max_iters), 0
        self.message_hub = MessageHub.get_instance(f"test-{id(self)}")


def test_ramp_follows_the_iteration_and_reaches_forked_workers():
    cfg = Config.fromfile(str(CONFIG))
    dataset = SynthWordDataset(cfg.charset, cfg.train_pipeline, length=10_000, seed=3)
    loader = torch.utils.data.DataLoader(dataset, batch_size=32, num_workers=1, persistent_workers=True,
                                         collate_fn=lambda s: s, prefetch_factor=1,
                                         sampler=range(10_000))
    hook = DifficultyRamp(start=0.0, fraction=0.5)
    runner = _Runner(loader, max_iters=100)
    seen = {}
    batches = iter(loader)
    for it in (0, 25, 50, 90):
        runner.iter = it
        hook.before_train_iter(runner, it)
        seen[it] = dataset.difficulty
        if it in (0, 90):
            next(batches)  # prefetched under the previous value: read one batch past it
            batch = next(batches)
            seen[f"long{it}"] = np.mean([len(s["text"]) > EASY_MAX_LENGTH for s in batch])
    assert [seen[i] for i in (0, 25, 50, 90)] == pytest.approx([0.0, 0.5, 1.0, 1.0])
    assert seen["long0"] == 0.0  # the worker drew only easy (short) words at difficulty 0
    assert seen["long90"] > 0.0  # and full-difficulty ones after the ramp
    # A resumed run (fresh hook, same iteration) sets the same difficulty.
    fresh = DifficultyRamp(start=0.0, fraction=0.5)
    runner.iter = 25
    fresh.before_train_iter(runner, 25)
    assert dataset.difficulty == pytest.approx(0.5)
    assert runner.message_hub.get_scalar("train/difficulty").current() == pytest.approx(0.5)  # logged


def test_a_run_killed_and_resumed_follows_the_same_curriculum_and_alignment_decay(tmp_path):
    """tools/train.py on the embedded synthetic words with the CPU schedule, killed with SIGKILL
    after a checkpoint and resumed: every logged difficulty and alignment weight equals the
    uninterrupted run's at the same iteration."""
    import json

    from conftest import REPO, TINY_RUN
    from test_fault_tolerance import kill_after_checkpoint, run

    iters = 8
    options = [*TINY_RUN, f"train_cfg.max_iters={iters}", "train_cfg.val_interval=1000",
               "train_dataloader.batch_size=4", "val_dataloader.dataset.length=8",
               "model.sequence_encoder.hidden_size=16", "param_scheduler.0.end=2", "param_scheduler.1.begin=2",
               "train_dataloader.dataset.length=10000"]  # shuffling 100M indices would take seconds

    def command(work_dir, *extra):
        return [sys.executable, str(REPO / "tools" / "train.py"), str(CONFIG), "--schedule", "cpu", "--work-dir",
                str(work_dir), "--no-test", *extra, "--cfg-options", *options]

    def logged(work_dir) -> dict[int, tuple[float, float]]:
        values = {}
        for log in sorted(work_dir.glob("*/vis_data/scalars.json")):  # one per run; the later run wins
            for line in log.read_text().splitlines():
                record = json.loads(line)
                if "difficulty" in record:
                    values[record["iter"]] = (record["difficulty"], record["alignment_weight"])
        return values

    straight = tmp_path / "straight" / "work"
    straight.parent.mkdir()
    run(command(straight), straight.parent)
    killed = tmp_path / "killed" / "work"
    killed.parent.mkdir()
    resumed_from = kill_after_checkpoint(command(killed), killed, iteration=4)
    run(command(killed, "--resume"), killed.parent)
    expected, got = logged(straight), logged(killed)
    assert sorted(expected) == sorted(got) == list(range(1, iters + 1)), (expected, got)
    assert resumed_from >= 4
    for it in expected:
        assert got[it] == pytest.approx(expected[it]), it
    difficulties = [expected[it][0] for it in sorted(expected)]
    assert difficulties == sorted(difficulties) and difficulties[0] < 1.0  # the ramp was under way
