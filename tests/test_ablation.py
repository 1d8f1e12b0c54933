"""Ablations: each config in configs/ablations changes exactly one thing and trains; the sweep
(tools/ablate.py) tabulates and charts its runs, resumes after an interruption, and trains a
decoder-only ablation once per seed."""
from __future__ import annotations

import copy
import json
import math
import shutil
import statistics
from pathlib import Path

import pytest
from PIL import Image

from conftest import CONFIG, REPO, edit_distance, random_words
from ocrframe import ablation
from ocrframe.ablation import Budget, Sweep, describe_changes
from ocrframe.cli import main
from ocrframe.visualize import training_curves
from ocrframe.registry import MODELS
from ocrframe.runner import load_config

ABLATIONS = sorted((REPO / "configs" / "ablations").glob("*.py"))
# what each family of ablation may change (file name prefix -> setting)
CHANGED_SETTING = {"encoder": "model.sequence_encoder", "backbone": "model.backbone", "decoder": "model.decoder",
                   "optimizer": "optim_wrapper.optimizer", "train_width": "train_pipeline",
                   "recipe": ("model.alignment_loss", "custom_hooks")}
# optimizer_adam changes the paper settings; under the CPU schedule (Adam already) it changes nothing
SCHEDULE = {"optimizer_adam": "paper"}
TINY = {"train_dataloader.batch_size": 4, "train_dataloader.num_workers": 0,
        "train_dataloader.persistent_workers": False, "val_dataloader.num_workers": 0,
        "val_dataloader.persistent_workers": False, "default_hooks.logger.interval": 1}


def tiny_sweep(configs, out: Path, data, seeds: int = 1, iters: int = 2, **kwargs) -> Sweep:
    train_lmdb, val_lmdb = data
    return Sweep([str(c) for c in configs], Budget(iters=iters), out, seeds=seeds, train_data=[str(train_lmdb)],
                 val_data=[str(val_lmdb)], cfg_options=dict(TINY), **kwargs)


@pytest.fixture(scope="module")
def data(train_lmdb, val_lmdb):
    return train_lmdb, val_lmdb


@pytest.mark.parametrize("config", ABLATIONS, ids=[c.stem for c in ABLATIONS])
def test_ablation_config_changes_one_setting_and_trains(config, data, tmp_path):
    schedule = SCHEDULE.get(config.stem, "auto")
    sweep = tiny_sweep([config], tmp_path, data, schedule=schedule)
    cfg = sweep.cfgs[config.stem]
    assert config.read_text().splitlines()[1].startswith("# "), "the second line says what changes and why"
    reference = load_config(str(CONFIG), schedule=schedule, cfg_options=dict(TINY), train_data=sweep.train_data,
                            val_data=sweep.val_data)  # loaded as the sweep loads its configs
    (change,) = describe_changes(reference, cfg)
    family = next(prefix for prefix in CHANGED_SETTING if config.stem.startswith(prefix))
    assert change.startswith(CHANGED_SETTING[family])

    sweep.run(log=lambda message: None)
    result = json.loads(sweep.result_path(config.stem, 0).read_text())
    assert result["iterations"] == 2 and result["changes"] == []  # the only config is its own reference
    model = MODELS.build(sweep.cfgs[config.stem].model)
    assert result["params"] == sum(p.numel() for p in model.parameters())
    losses = [r["loss"] for r in training_curves(result["work_dir"])[0]]
    assert len(losses) == 2 and all(math.isfinite(loss) and loss > 0 for loss in losses)
    assert 0 <= result["metrics"]["word_acc"] <= 1 and result["val_images"] == 16


def test_a_component_added_to_or_left_out_of_a_list_is_named():
    from mmengine.config import Config

    hooks = [dict(type="CurvePlotHook"), dict(type="DifficultyRamp", start=0.0, fraction=0.4),
             dict(type="TimeBudgetHook", minutes=10)]
    reference = Config(dict(custom_hooks=hooks, layers=[1, 2, 3]))
    assert describe_changes(reference, Config(dict(custom_hooks=[hooks[0], hooks[2]], layers=[1, 2, 3]))) == [
        "custom_hooks: [DifficultyRamp(start=0.0, fraction=0.4)] → []"]
    assert describe_changes(reference, Config(dict(custom_hooks=[*hooks, dict(type="EMAHook", momentum=0.001)],
                                                   layers=[1, 3]))) == [
        "custom_hooks: [] → [EMAHook(momentum=0.001)]", "layers: [2] → []"]


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def two_config_sweep(tmp_path_factory, data):
    """The paper config and the no-recurrence ablation, 2 seeds, 2 iterations each: interrupted
    as the third run starts, then the same sweep again."""
    out = tmp_path_factory.mktemp("sweep")
    configs = [CONFIG, REPO / "configs" / "ablations" / "encoder_identity.py"]
    trained, real_build = [], ablation.build_runner

    def build_runner(cfg):
        trained.append(Path(cfg.work_dir).name)
        if len(trained) == 3 and not (out / "interrupted").exists():
            (out / "interrupted").touch()
            raise Interrupted
        return real_build(cfg)

    ablation.build_runner = build_runner
    try:
        with pytest.raises(Interrupted):
            tiny_sweep(configs, out, data, seeds=2).run(log=lambda message: None)
        finished_before = {p.name: p.read_text() for p in (out / "runs").glob("*.json")}
        messages = []
        sweep = tiny_sweep(configs, out, data, seeds=2)
        sweep.run(log=messages.append)
    finally:
        ablation.build_runner = real_build
    return sweep, trained, finished_before, messages


def test_sweep_resumes_without_repeating_finished_runs(two_config_sweep):
    sweep, trained, finished_before, messages = two_config_sweep
    assert sorted(finished_before) == ["crnn_vgg_bilstm_ctc__seed0.json", "encoder_identity__seed0.json"]
    # seed 1 of the paper config was interrupted; the second sweep trains only what is missing
    assert trained == ["crnn_vgg_bilstm_ctc__seed0", "encoder_identity__seed0", "crnn_vgg_bilstm_ctc__seed1",
                       "crnn_vgg_bilstm_ctc__seed1", "encoder_identity__seed1"]
    assert "seed 0: crnn_vgg_bilstm_ctc finished earlier, not repeated" in messages
    for name, text in finished_before.items():
        assert (sweep.out / "runs" / name).read_text() == text


def test_sweep_table_holds_each_config_with_mean_and_std_over_seeds(two_config_sweep, tmp_path):
    sweep = two_config_sweep[0]
    table = (sweep.out / "results.md").read_text()
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines() if line.startswith("| ")}
    assert set(rows) == {"config", "crnn_vgg_bilstm_ctc", "encoder_identity"}
    for name in ("crnn_vgg_bilstm_ctc", "encoder_identity"):
        runs = [json.loads(sweep.result_path(name, seed).read_text()) for seed in (0, 1)]
        model = MODELS.build(sweep.cfgs[name].model)
        cells = [c.strip() for c in rows[name].strip("|").split("|")]
        assert cells[2] == f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M"
        assert cells[3] == "2"  # iterations
        assert all(r["train_images_per_s"] > 0 for r in runs)  # measured; a loaded machine may round it to 0
        assert cells[4] == f"{statistics.fmean(r['train_images_per_s'] for r in runs):,.0f}"
        losses = [training_curves(r["work_dir"])[0][-1]["loss"] for r in runs]  # logged at every iteration here
        assert cells[6] == f"{statistics.fmean(losses):.2f}"
        assert cells[9] == "2"
    assert "reference" in rows["crnn_vgg_bilstm_ctc"]
    assert "`model.sequence_encoder: BiLSTM(hidden_size=256, num_layers=2) → Identity()`" in rows["encoder_identity"]
    assert "Not run yet" not in table
    with Image.open(sweep.out / "results.png") as chart:
        assert chart.format == "PNG" and chart.width > 300

    # Accuracies two seeds apart, so that mean, sample and population standard deviation all differ:
    # the same runs with known metrics, tabulated again (in a copy of the sweep's output).
    known = {"crnn_vgg_bilstm_ctc": ([0.25, 0.75], [0.5, 0.9]), "encoder_identity": ([0.125, 0.375], [0.3, 0.4])}
    copied = copy.copy(sweep)
    copied.out = Path(shutil.copytree(sweep.out, tmp_path / "out"))
    for name, (accuracy, ned) in known.items():
        for seed in (0, 1):
            path = copied.result_path(name, seed)
            run = json.loads(path.read_text())
            run["metrics"].update(word_acc=accuracy[seed], one_minus_ned=ned[seed])
            path.write_text(json.dumps(run))
    ablation.write_report(copied, log=lambda message: None)
    rows = {line.split(" | ")[0].strip("| "): [c.strip() for c in line.strip("|").split("|")]
            for line in (copied.out / "results.md").read_text().splitlines() if line.startswith("| ")}
    # by hand: mean (a + b) / 2 and sample standard deviation |a - b| / sqrt(2)
    assert rows["crnn_vgg_bilstm_ctc"][7:9] == ["50.0% ± 35.4%", "0.700 ± 0.283"]
    assert rows["encoder_identity"][7:9] == ["25.0% ± 17.7%", "0.350 ± 0.071"]


def test_sweep_refuses_to_mix_budgets_in_one_output(two_config_sweep, data):
    sweep = two_config_sweep[0]
    with pytest.raises(ValueError, match=r"was run with budget 2 iterations.*this sweep has 3 iterations"):
        tiny_sweep([CONFIG], sweep.out, data, iters=3).run(log=lambda message: None)


def test_decoder_only_ablation_is_evaluated_on_the_same_training(tmp_path, data, tinyconv):
    """Two decoder-only ablations of one training: the plugin template's ConfidenceDecoder (a best
    path decoder of its own) reads as the greedy decoder does; a lexicon decoder whose lexicon is one
    validation word reads that word for every image, whatever the model: its metrics are known."""
    words = random_words(16, seed=2)  # the validation LMDB's labels (conftest.val_lmdb)
    only = words[3]
    confidence, one_word = tmp_path / "decoder_confidence.py", tmp_path / "decoder_one_word.py"
    confidence.write_text(f'_base_ = ["{CONFIG}"]\nmodel = dict(decoder=dict(_delete_=True, type="ConfidenceDecoder"))\n')
    one_word.write_text(f'_base_ = ["{CONFIG}"]\nmodel = dict(decoder=dict(_delete_=True, type="LexiconDecoder", '
                        f'lexicon=["{only}"], mode="exhaustive"))\n')
    sweep = tiny_sweep([CONFIG, confidence, one_word], tmp_path / "out", data)
    assert sweep.groups == [["crnn_vgg_bilstm_ctc", "decoder_confidence", "decoder_one_word"]]
    trained, real_build = [], ablation.build_runner
    ablation.build_runner = lambda cfg: trained.append(cfg.work_dir) or real_build(cfg)
    try:
        sweep.run(log=lambda message: None)
    finally:
        ablation.build_runner = real_build
    assert len(trained) == 1
    greedy, confident, fixed = (json.loads(sweep.result_path(n, 0).read_text()) for n in sweep.names)
    assert confident["trained_with"] == fixed["trained_with"] == "crnn_vgg_bilstm_ctc"
    assert confident["metrics"] == greedy["metrics"]
    assert fixed["metrics"]["word_acc"] == pytest.approx(words.count(only) / len(words))
    ned = statistics.fmean(edit_distance(only, w) / max(len(only), len(w)) for w in words)
    assert fixed["metrics"]["one_minus_ned"] == pytest.approx(1 - ned)
    assert fixed["metrics"] != greedy["metrics"]
    assert "† Only the decoder differs" in (sweep.out / "results.md").read_text()


def test_sweep_naming_a_missing_component_fails_before_any_training(tmp_path, data):
    config = tmp_path / "decoder_missing.py"
    config.write_text(f'_base_ = ["{CONFIG}"]\nmodel = dict(decoder=dict(_delete_=True, type="NoSuchDecoder"))\n')
    with pytest.raises(KeyError, match="'NoSuchDecoder' is not a registered decoder"):
        tiny_sweep([CONFIG, config], tmp_path / "out", data)
    assert not (tmp_path / "out").exists()


def test_sweep_of_a_config_without_word_metrics_fails_before_any_training(tmp_path, data):
    from ocrframe.ablation import Budget, Sweep

    with pytest.raises(ValueError, match="crnn_omr: the sweep compares word accuracy"):
        Sweep([str(CONFIG), str(REPO / "configs" / "crnn_omr.py")], Budget(iters=2), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_budget_parses_times_and_iterations():
    assert Budget.parse("10m") == Budget(minutes=10)
    assert Budget.parse("90s") == Budget(minutes=1.5)
    assert Budget.parse("1.5h") == Budget(minutes=90)
    assert Budget.parse("500") == Budget(iters=500)
    for bad in ("10 minutes", "2.5", "0", "-3m"):
        with pytest.raises(ValueError, match="neither a time"):
            Budget.parse(bad)


def test_time_budget_run_is_sized_by_time_budget_hook_with_one_validation(tmp_path):
    sweep = Sweep([str(CONFIG)], Budget.parse("2m"), tmp_path)
    cfg = sweep.run_config("crnn_vgg_bilstm_ctc", seed=1)
    budget_hooks = [h for h in cfg.custom_hooks if h["type"] == "TimeBudgetHook"]
    assert budget_hooks == [dict(type="TimeBudgetHook", minutes=2.0, validations=1)]  # the schedule's 27 min replaced
    assert cfg.randomness.seed == 1 and cfg.default_hooks.checkpoint is None


def test_iteration_budget_ends_the_cosine_decay_with_the_run():
    warmup = dict(type="LinearLR", begin=0, end=300)
    cosine = dict(type="CosineAnnealingLR", begin=300, end=20_000)
    assert ablation.fit_schedulers([warmup, cosine], 20_000, 1000) == [warmup, dict(cosine, end=1000)]
    assert ablation.fit_schedulers([warmup, cosine], 20_000, 100) == [dict(warmup, end=100)]


@pytest.mark.parametrize("iters", [1000, 30_000])  # shorter and longer than the CPU schedule's 20k
def test_an_iteration_budget_sets_the_run_length_and_the_end_of_its_decay(tmp_path, iters):
    cfg = Sweep([str(CONFIG)], Budget.parse(str(iters)), tmp_path).run_config("crnn_vgg_bilstm_ctc", seed=0)
    assert cfg.train_cfg.max_iters == iters and cfg.param_scheduler[-1]["end"] == iters


def test_ablate_command_says_how_to_resume(capsys):
    with pytest.raises(SystemExit):
        main(["ablate", "--help"])
    assert "run the same command again to resume" in " ".join(capsys.readouterr().out.split())
