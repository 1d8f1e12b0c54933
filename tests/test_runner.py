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
import torch
from mmengine.config import Config
from PIL import Image

from conftest import (CONFIG, READING_ALPHABET, REPO, TINY_RUN, edit_distance, make_lmdb, random_words, render_word,
                      write_word_folder)
from ocrframe.checkpoint import load_checkpoint
from ocrframe.data.transforms import Compose
from ocrframe.checkpoint import load_model
from ocrframe.cli import main
from ocrframe.visualize import training_curves
from ocrframe.registry import MODELS
from ocrframe.optim import native_bf16
from ocrframe.runner import auto_schedule, load_config, schedule_chain

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
    # no GPU here: the config's CPU schedule for this CPU, and the log says so
    expected = "cpu" if native_bf16("cpu") else "cpu-fp32"
    assert dumped.schedule == expected
    assert f"schedule: {expected} -- " in first_run.log
    # the schedule's time budget sizes the run; the log names it and the command line's bound
    minutes = next(h.minutes for h in dumped.custom_hooks if h.type == "TimeBudgetHook")
    assert f"batch 8, a {minutes:g}-minute budget (at most 4 iterations)" in first_run.log


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


@pytest.mark.parametrize("config", ["crnn_vgg_bilstm_ctc.py", "crnn_omr.py", *sorted(
    f"ablations/{p.name}" for p in (REPO / "configs" / "ablations").glob("*.py"))])
def test_a_cpu_without_fast_bf16_trains_at_batch_8_and_otherwise_as_the_cpu_schedule(config, monkeypatch):
    """fp32 steps cost more than bf16's: the fp32 schedule takes twice the updates, nothing else
    differs, also in a config that changes `cpu` (the ablations)."""
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    path = str(REPO / "configs" / config)
    for fast_bf16, expected in ((True, "cpu"), (False, "cpu-fp32")):
        monkeypatch.setattr("ocrframe.runner.native_bf16", lambda device: fast_bf16)
        assert load_config(path).schedule == expected
    fp32, cpu = load_config(path, schedule="cpu-fp32"), load_config(path, schedule="cpu")
    assert (fp32.train_dataloader.batch_size, cpu.train_dataloader.batch_size) == (8, 16)
    if config == "crnn_omr.py":  # OMR batches snippets of one note count
        assert (fp32.train_dataloader.dataset.length_group, cpu.train_dataloader.dataset.length_group) == (8, 16)

    def rest(cfg):  # everything but the batch, and the run's own name
        settings = {k: v for k, v in cfg.to_dict().items() if k not in ("schedule", "experiment_name")}
        del settings["train_dataloader"]["batch_size"]
        settings["train_dataloader"]["dataset"].pop("length_group", None)
        return settings

    assert rest(fp32) == rest(cpu)


def test_a_schedule_based_on_another_is_merged_over_it_so_a_change_to_the_base_reaches_it(tmp_path):
    """A config that changes `cpu` changes cpu-long, cpu-fp32 and finetune with it; each keeps its own changes."""
    config = tmp_path / "one_worker.py"
    config.write_text(f"_base_ = [{str(CONFIG)!r}]\n"
                      "schedules = dict(cpu=dict(train_dataloader=dict(num_workers=1)))\n")
    for name, batch in (("cpu", 16), ("cpu-fp32", 8), ("cpu-long", 16), ("finetune", 16)):
        cfg = load_config(str(config), schedule=name)
        assert (cfg.train_dataloader.num_workers, cfg.train_dataloader.batch_size) == (1, batch), name
    assert load_config(str(CONFIG), schedule="cpu").train_dataloader.num_workers == 2
    finetune = load_config(str(config), schedule="finetune")
    assert (finetune.optim_wrapper.optimizer.lr, finetune.model.alignment_loss) == (1e-4, 0.0)
    assert finetune.optim_wrapper.type == "AutocastOptimWrapper"  # from `cpu`
    assert "based_on" not in finetune


def test_schedule_chains_apply_from_the_root_and_bad_bases_are_named():
    schedules = Config(dict(s=dict(a=dict(x=1, y=1), b=dict(based_on="a", y=2), c=dict(based_on="b", z=3)))).s
    assert schedule_chain(schedules, "c") == [dict(x=1, y=1), dict(y=2), dict(z=3)]
    assert schedule_chain(schedules, "a") == [dict(x=1, y=1)]
    broken = Config(dict(s=dict(a=dict(based_on="nope"), b=dict(based_on="c"), c=dict(based_on="b")))).s
    with pytest.raises(ValueError, match=r"no schedule 'nope' \(which 'a' is based on\); it has: paper, a, b, c"):
        schedule_chain(broken, "a")
    with pytest.raises(ValueError, match=r"based on each other in a circle: b -> c -> b"):
        schedule_chain(broken, "b")


def test_the_paper_schedule_runs_on_a_gpu_and_a_config_without_an_fp32_schedule_gets_cpu(monkeypatch):
    monkeypatch.setattr("ocrframe.runner.native_bf16", lambda device: False)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert auto_schedule({"cpu": {}}) == "cpu"
    assert auto_schedule({}) == "paper"
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    assert auto_schedule({"cpu": {}, "cpu_fp32": {}}) == "paper"


def test_training_checkpoint_loads_safely_into_a_fresh_model(first_run):
    checkpoint = load_checkpoint(first_run.work_dir / "iter_4.pth")  # weights_only=True
    assert checkpoint["meta"]["iter"] == 4
    model = MODELS.build(load_config(str(CONFIG), schedule="cpu").model)  # the model the CPU schedule trains
    assert not model.load_state_dict(checkpoint["state_dict"], strict=True).missing_keys


def test_training_checkpoints_store_the_config_as_data_that_read_uses(first_run):
    meta = load_checkpoint(first_run.work_dir / "iter_4.pth")["meta"]
    assert meta["cfg_format"] == "json"
    assert json.loads(meta["cfg"])["model"] == load_config(str(CONFIG), schedule="cpu").model.to_dict()


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


def best_path_reading(model, pipeline, image: Image.Image) -> tuple[str, float]:
    """Reference reading: the network on one image, the most probable class of each frame, repeats
    merged and blanks dropped by hand (the symbols then spelled by the charset); the score is the
    sum of the per-frame maxima."""
    sample = pipeline(dict(image=image.convert("RGB"), text="", key="0"))
    with torch.no_grad():
        best = model(sample["image"][None])[0].max(-1)
    path = best.indices.tolist()
    symbols = [c for t, c in enumerate(path) if c != model.charset.blank and (t == 0 or c != path[t - 1])]
    return model.charset.decode(symbols), float(best.values.sum())


MIXED_WORDS = random_words(12, seed=4, letters=READING_ALPHABET) + random_words(4, seed=5, letters="bcfghkquvwxyz")


@pytest.fixture(scope="module")
def mixed_lmdb(tmp_path_factory) -> Path:
    """12 words of the letters the reading model knows and 4 with letters it never saw."""
    base = tmp_path_factory.mktemp("mixed")
    return make_lmdb(write_word_folder(base / "folder", MIXED_WORDS), base / "lmdb")


def test_test_tool_prints_the_metrics_of_the_checkpoints_readings(reading_checkpoint, reading_config, mixed_lmdb,
                                                                   tmp_path):
    result = tool("test", reading_config, reading_checkpoint, "--data", mixed_lmdb, "--work-dir", tmp_path / "t",
                  "--cfg-options", "test_dataloader.num_workers=0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    # the reference: each image the LMDB was made of, read alone, scored by hand
    model, cfg = load_model(reading_checkpoint)
    pipeline = Compose(cfg.test_pipeline)
    pairs = [(best_path_reading(model, pipeline, render_word(word))[0], word) for word in MIXED_WORDS]
    correct = sum(p == g for p, g in pairs)
    assert 0 < correct < 16  # some read right, some not: a mix-up of metrics shows
    distances = [edit_distance(p, g) for p, g in pairs]
    expected = dict(word_acc=correct / 16, word_acc_exact=correct / 16,
                    one_minus_ned=1 - sum(d / max(len(p), len(g)) for d, (p, g) in zip(distances, pairs)) / 16,
                    cer=sum(distances) / sum(len(g) for _, g in pairs))
    assert metrics == pytest.approx(expected, abs=1e-4)
    # the worst misreadings, drawn: one cell per misread image
    misread = 16 - correct
    assert f"worst_errors.png: the {misread} worst of {misread} misreadings among 16 test images" in result.stdout
    with Image.open(tmp_path / "t" / "worst_errors.png") as grid:
        assert grid.format == "PNG" and grid.height >= math.ceil(misread / (grid.width // 100)) * 48


def test_infer_tool_prints_a_text_and_score_per_image(reading_checkpoint, tmp_path):
    words = ["open", "sesame", "planet"]
    images = []
    for word in words:  # on canvases of one width, so that no image is padded in the tool's batch
        canvas = Image.new("RGB", (140, 32), "white")
        canvas.paste(render_word(word), (0, 0))
        canvas.save(tmp_path / f"{word}.png")
        images.append(tmp_path / f"{word}.png")
    result = tool("infer", reading_checkpoint, *images, "--precision", "fp32", "--runtime", "torch", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    model, cfg = load_model(reading_checkpoint)
    right = 0
    for line, image, word in zip(lines, images, words):
        path, text, score = line.split("\t")
        reference_text, reference_score = best_path_reading(model, Compose(cfg.test_pipeline), Image.open(image))
        assert (path, text) == (str(image), reference_text)
        right += text == word
        # printed with 3 decimals; the tool decodes the PNG straight to gray (OpenCV), within one grey
        # level of the Pillow conversion the reference uses
        assert float(score) == pytest.approx(reference_score, abs=1e-2)
    assert right >= 2  # the small model reads most of them: the texts are not empty noise


def test_train_with_amp_and_auto_scale_lr(train_lmdb, val_lmdb, tmp_path):
    work_dir = tmp_path / "amp"
    result = train(work_dir, train_lmdb, val_lmdb, 2, "--amp", "--auto-scale-lr", "--schedule", "paper",
                   options=("model.sequence_encoder.hidden_size=32",))
    assert "mixed precision: CPU bf16 autocast" in result.stdout
    dumped = Config.fromfile(str(work_dir / "crnn_vgg_bilstm_ctc.py"))
    assert dumped.optim_wrapper.type == "AutocastOptimWrapper" and dumped.optim_wrapper.dtype == "bfloat16"
    assert dumped.optim_wrapper.optimizer == dict(type="Adadelta", lr=1.0, rho=0.9)  # the paper's, kept
    # ADADELTA's lr 1.0 scaled by (1 process x batch 8) / base batch 64
    losses = [r for r in finished_run(work_dir).scalars if "loss" in r]
    assert [r["lr"] for r in losses] == pytest.approx([1.0 * 8 / 64] * 2)


def test_mixed_precision_on_a_cpu_is_bf16_autocast_keeping_the_optimizer():
    from ocrframe.optim import use_mixed_precision

    cfg = Config(dict(optim_wrapper=dict(type="GuardedOptimWrapper", optimizer=dict(type="Adam", lr=1e-3),
                                         clip_grad=dict(max_norm=5.0), loss_scale="dynamic", max_consecutive_skips=7)))
    assert use_mixed_precision(cfg).startswith("CPU bf16 autocast")
    assert cfg.optim_wrapper == dict(type="AutocastOptimWrapper", dtype="bfloat16", optimizer=dict(type="Adam", lr=1e-3),
                                     clip_grad=dict(max_norm=5.0), max_consecutive_skips=7)


@pytest.mark.parametrize("fast_bf16", [True, False])
def test_autocast_wrapper_runs_the_forward_in_bf16_where_the_cpu_has_fast_bf16(fast_bf16, monkeypatch):
    import ocrframe.optim
    from ocrframe.optim import AutocastOptimWrapper

    logged = []
    monkeypatch.setattr(ocrframe.optim, "native_bf16", lambda device: fast_bf16)
    monkeypatch.setattr(ocrframe.optim, "print_log", lambda message, **kwargs: logged.append(message))
    model = torch.nn.Linear(4, 2)
    before = model.weight.detach().clone()
    wrapper = AutocastOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    for _ in range(2):
        with wrapper.optim_context(model):
            out = model(torch.ones(3, 4))
        assert out.dtype == (torch.bfloat16 if fast_bf16 else torch.float32)
        wrapper.update_params(out.float().pow(2).mean())
    assert not torch.equal(model.weight, before) and model.weight.dtype == torch.float32  # fp32 weights stepped
    assert sum("has no fast bf16 kernels" in m for m in logged) == (0 if fast_bf16 else 1)  # said once


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
          # one plan: the decay below is then one cosine (re-plans are tests/test_resume.py's)
          "custom_hooks.4.validations=1", "custom_hooks.4.replan=1.0", "param_scheduler.0.end=3", "param_scheduler.1.begin=3"))
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
