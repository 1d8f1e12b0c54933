"""Surviving faults: a training process killed with SIGKILL resumes where its last checkpoint left
it (same weights as a run never interrupted); checkpoints are written atomically and the last K
kept; a crafted checkpoint is refused on resume; a non-finite loss skips the step and names the
samples; an exception in a data worker names the dataset, the sample and the cause."""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from conftest import CONFIG, REPO, TESTS, TINY_RUN
from ocrframe.checkpoint import load_checkpoint
from ocrframe.fileio import atomic_write

ITERS = 12
# The CPU schedule (Adam, warm-up then cosine LR) with a small BiLSTM, checkpoints every 2
# iterations (the last 2 kept), validation only at the end; the LMDB's 64 images reshuffled every
# epoch of 8 batches.
OPTIONS = [*TINY_RUN, f"train_cfg.max_iters={ITERS}", "train_cfg.val_interval=1000",
           "model.sequence_encoder.hidden_size=32", "default_hooks.checkpoint.max_keep_ckpts=2",
           "param_scheduler.0.end=6", "param_scheduler.1.begin=6"]


def train_command(work_dir: Path, data: tuple[Path, Path], *extra: str) -> list[str]:
    """tools/train.py on (train LMDB, validation LMDB); the loop validates once, at the end. The
    config adds a hook recording the keys of each training batch (to WORK_DIR/../probe)."""
    config = work_dir.parent / "config_with_probe.py"
    config.write_text(f"""
_base_ = [{str(CONFIG)!r}]
custom_imports = dict(imports=["rank_probe"], allow_failed_imports=False)
schedules = dict(cpu=dict(custom_hooks=[dict(type="RankProbeHook", out_dir={str(work_dir.parent / "probe")!r})]))
""")
    return [sys.executable, str(REPO / "tools" / "train.py"), str(config), "--schedule", "cpu", "--work-dir",
            str(work_dir), "--data", str(data[0]), "--val-data", str(data[1]), "--no-test", *extra,
            "--cfg-options", *OPTIONS]


def environment() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1",
                PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))


def batch_keys(work_dir: Path) -> list[list[str]]:
    """The keys of each batch the (last) run trained on."""
    return json.loads((work_dir.parent / "probe" / "keys_rank0.json").read_text())["keys"]


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=300, env=environment())
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def kill_after_checkpoint(command: list[str], work_dir: Path, iteration: int) -> int:
    """Start training, SIGKILL it as soon as the checkpoint of ``iteration`` is in place; return the
    iteration of the checkpoint it left as the last one."""
    log = work_dir.parent / "killed_run.log"
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=work_dir.parent,
                                   env=environment())
    deadline = time.monotonic() + 240
    while not (work_dir / "last_checkpoint").is_file() or \
            not (work_dir / "last_checkpoint").read_text().endswith(f"iter_{iteration}.pth"):
        assert process.poll() is None, f"training ended before iteration {iteration}: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    last = (work_dir / "last_checkpoint").read_text()
    return int(re.search(r"iter_(\d+)\.pth$", last).group(1))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, train_lmdb, val_lmdb) -> Path:
    work_dir = tmp_path_factory.mktemp("straight") / "work"
    run(train_command(work_dir, (train_lmdb, val_lmdb)), work_dir.parent)
    return work_dir


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory, train_lmdb, val_lmdb) -> tuple[Path, int, str]:
    work_dir = tmp_path_factory.mktemp("killed") / "work"
    resumed_from = kill_after_checkpoint(train_command(work_dir, (train_lmdb, val_lmdb)), work_dir, iteration=4)
    for checkpoint in work_dir.glob("*.pth"):  # whatever the kill interrupted, what is there loads
        load_checkpoint(checkpoint)
    result = run(train_command(work_dir, (train_lmdb, val_lmdb), "--resume"), work_dir.parent)
    return work_dir, resumed_from, result.stdout + result.stderr


def test_resume_after_sigkill_reaches_the_same_weights_as_an_uninterrupted_run(uninterrupted, killed_and_resumed):
    work_dir, resumed_from, log = killed_and_resumed
    assert resumed_from >= 4
    assert re.search(rf"resumed epoch: 0, iter: {resumed_from}\b", log)
    # the data position is restored without loading the batches already trained on
    assert f"resumed the data at sample {resumed_from * 8} of the global order" in log
    assert "Advance dataloader" not in log
    assert batch_keys(work_dir) == batch_keys(uninterrupted)[resumed_from:]  # the same samples, in order
    straight = load_checkpoint(uninterrupted / f"iter_{ITERS}.pth")
    resumed = load_checkpoint(work_dir / f"iter_{ITERS}.pth")
    assert resumed["meta"]["iter"] == straight["meta"]["iter"] == ITERS
    # optimizer state: Adam's step counts and moments continue, not restart
    assert {float(s["step"]) for s in resumed["optimizer"]["state"].values()} == {float(ITERS)}
    for a, b in zip(straight["optimizer"]["state"].values(), resumed["optimizer"]["state"].values()):
        torch.testing.assert_close(a["exp_avg_sq"], b["exp_avg_sq"], rtol=1e-4, atol=1e-9)
    # scheduler state: the warm-up and the cosine decay are where they were
    assert [s["last_step"] for s in resumed["param_schedulers"]] == [s["last_step"] for s in straight["param_schedulers"]]
    lr = [g["lr"] for g in resumed["optimizer"]["param_groups"]]
    assert lr == pytest.approx([g["lr"] for g in straight["optimizer"]["param_groups"]])
    # the same samples in the same order after the kill: the weights agree
    for name, tensor in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][name], tensor, rtol=1e-4, atol=1e-5, msg=name)


def infinite_sampler(size: int, shuffle: bool, rank: int = 0, world_size: int = 1):
    import itertools

    from mmengine.dataset import InfiniteSampler

    sampler = InfiniteSampler(list(range(size)), shuffle=shuffle, seed=3)
    sampler.rank, sampler.world_size = rank, world_size
    sampler.indices = sampler._indices_of_rank()
    return lambda n: list(itertools.islice(iter(sampler), n)), sampler


@pytest.mark.parametrize("shuffle", [True, False])
def test_a_sampler_started_at_a_position_goes_on_with_the_samples_that_follow_it(shuffle):
    """Two ranks drew 7 batches of 3 (42 samples of the global order, 4 epochs of 10 and more); the
    run resumes on one rank, or on two: each rank goes on with its share of what follows."""
    from ocrframe.data.sampler import start_at

    draw, _ = infinite_sampler(10, shuffle)
    order = draw(200)  # one rank: the global order itself
    for world in (1, 2):
        for rank in range(world):
            draw, sampler = infinite_sampler(10, shuffle, rank, world)
            draw(5)  # what the loop's first iterator prefetched before the checkpoint was loaded
            start_at(sampler, 42)
            assert draw(30) == order[42 + rank::world][:30]


def test_resuming_on_another_number_of_processes_warns_about_the_learning_rate():
    from ocrframe.loops import resume_message

    message = resume_message(old_world=4, new_world=2, batch_size=64, auto_scale_lr=True)
    assert "trained on 4 process(es) with 2" in message and "learning rates are the checkpoint's" in message
    assert "--auto-scale-lr scaled them for 4 x 64" in message
    assert "global batch is now 128 instead of 256" in resume_message(4, 2, 64, auto_scale_lr=False)


def test_only_the_last_k_checkpoints_are_kept_and_last_checkpoint_points_at_the_newest(uninterrupted, killed_and_resumed):
    for work_dir in (uninterrupted, killed_and_resumed[0]):
        assert sorted(p.name for p in work_dir.glob("iter_*.pth")) == [f"iter_{ITERS - 2}.pth", f"iter_{ITERS}.pth"]
        assert [p.name for p in work_dir.glob("best_*.pth")] == [f"best_word_acc_iter_{ITERS}.pth"]
        assert (work_dir / "last_checkpoint").read_text().endswith(f"iter_{ITERS}.pth")
        assert not [p.name for p in work_dir.iterdir() if ".tmp-" in p.name]


def test_an_interrupted_write_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    target = tmp_path / "latest.pth"
    atomic_write(target, b"complete old checkpoint")

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, b"new checkpoint that never finishes")
    assert target.read_bytes() == b"complete old checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pth"]  # no temporary file left behind


def test_resume_from_a_crafted_pickle_is_refused_and_its_code_never_runs(tmp_path, train_lmdb, val_lmdb):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "meta": Payload()}, evil)
    result = subprocess.run(train_command(tmp_path / "work", (train_lmdb, val_lmdb), "--resume", str(evil)),
                            capture_output=True, text=True, cwd=tmp_path, timeout=300, env=environment())
    assert result.returncode != 0
    assert f"refused to load {evil}" in result.stderr
    assert not marker.exists()


# -- non-finite losses -------------------------------------------------------------------------

@pytest.fixture
def small_model():
    from mmengine.config import Config

    from ocrframe.registry import MODELS

    cfg = Config.fromfile(str(CONFIG))
    torch.manual_seed(0)
    return MODELS.build(dict(cfg.model, sequence_encoder=dict(type="BiLSTM", hidden_size=16, num_layers=1)))


def wrapper_for(model, **kwargs):
    from ocrframe.optim import GuardedOptimWrapper

    return GuardedOptimWrapper(optimizer=torch.optim.Adam(model.parameters(), 1e-3), **kwargs)


def batch(texts: list[str], width: int = 100, nan_in: int | None = None) -> dict:
    images = torch.randn(len(texts), 1, 32, width)
    if nan_in is not None:
        images[nan_in, 0, 5, 5] = float("nan")
    return dict(inputs=images, data_samples=dict(texts=texts, keys=[f"key-{t}" for t in texts],
                                                  widths=torch.full((len(texts),), width)))


def snapshot(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_a_label_longer_than_the_frames_is_left_out_by_key_and_the_step_still_taken(small_model, caplog):
    optim = wrapper_for(small_model)
    frames = small_model.backbone.num_frames(24)  # 7 frames: a 10-letter label cannot fit
    before = snapshot(small_model)
    with caplog.at_level(logging.WARNING):
        log_vars = small_model.train_step(batch(["ab", "abcdefghij", "cd"], width=24), optim)
    assert frames < 10
    assert torch.isfinite(log_vars["loss"])
    assert "key-abcdefghij" in caplog.text and "longer than the frames" in caplog.text
    assert optim.skipped_steps == 0
    after = small_model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())


def test_a_non_finite_loss_names_the_sample_and_skips_the_step(small_model, caplog):
    optim = wrapper_for(small_model)
    before = snapshot(small_model)
    with caplog.at_level(logging.WARNING):
        small_model.train_step(batch(["ab", "cd", "ef"], nan_in=1), optim)
    assert "non-finite pixels" in caplog.text and "key-cd" in caplog.text and "key-ab" not in caplog.text
    assert optim.skipped_steps == 1
    after = small_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and batch-norm statistics
    assert not optim.optimizer.state  # Adam never stepped
    small_model.train_step(batch(["ab", "cd", "ef"]), optim)  # the next good batch trains
    assert any(not torch.equal(before[k], v) for k, v in small_model.state_dict().items())


def test_a_diverged_run_stops_with_advice_instead_of_skipping_forever(small_model):
    from ocrframe.optim import NonFiniteLossError

    optim = wrapper_for(small_model, max_consecutive_skips=3)
    for _ in range(2):
        small_model.train_step(batch(["ab"], nan_in=0), optim)
    with pytest.raises(NonFiniteLossError, match="3 steps in a row.*Lower the learning rate"):
        small_model.train_step(batch(["ab"], nan_in=0), optim)


def test_a_finite_step_resets_the_count_of_skips_in_a_row(small_model):
    from ocrframe.optim import NonFiniteLossError

    optim = wrapper_for(small_model, max_consecutive_skips=3)
    for nan_in in (0, 0, None, 0, 0):  # two skips, a good step, two skips: never three in a row
        small_model.train_step(batch(["ab"], nan_in=nan_in), optim)
    assert optim.skipped_steps == 4
    with pytest.raises(NonFiniteLossError, match="3 steps in a row"):
        small_model.train_step(batch(["ab"], nan_in=0), optim)
    assert optim.skipped_steps == 5


RANK_SCRIPT = """
import json, os, sys
import torch
import torch.distributed as dist
from ocrframe.optim import GuardedOptimWrapper

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = torch.nn.Linear(3, 1)
optim = GuardedOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
before = model.weight.detach().clone()
loss = model(torch.ones(2, 3)).pow(2).mean()
if rank == 1:
    loss = loss * float("nan")  # a NaN on this rank only
optim.update_params(loss)
skipped_first = optim.skipped_steps
unchanged = torch.equal(model.weight, before)
optim.update_params(model(torch.ones(2, 3)).pow(2).mean())  # finite on both ranks
json.dump(dict(skipped_first=skipped_first, unchanged=unchanged, skipped_total=optim.skipped_steps,
               moved=not torch.equal(model.weight, before)), open(sys.argv[1] + f"/rank{rank}.json", "w"))
dist.destroy_process_group()
"""


def test_a_nan_on_one_rank_makes_every_rank_skip_the_step(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "rank.py").write_text(RANK_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    processes = [subprocess.Popen([sys.executable, str(tmp_path / "rank.py"), str(tmp_path)], cwd=tmp_path,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env=dict(env, RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                                           MASTER_PORT=str(port), OMP_NUM_THREADS="1"))
                 for rank in range(2)]
    for process in processes:
        output = process.communicate(timeout=300)[0]
        assert process.returncode == 0, output[-3000:]
    for rank in range(2):
        record = json.loads((tmp_path / f"rank{rank}.json").read_text())
        # rank 0's loss was finite, yet it skipped with rank 1: the ranks' weights stay the same
        assert record == dict(skipped_first=1, unchanged=True, skipped_total=1, moved=True), (rank, record)


# -- data workers ------------------------------------------------------------------------------

class FailsOn:
    """A transform with a bug that shows on one sample only."""

    def __init__(self, key: str):
        self.key = key

    def __call__(self, sample: dict) -> dict:
        if sample["key"] == self.key:
            return {"ratio": 1 / 0}
        return sample


@pytest.mark.parametrize("dataset_type", ["LMDBDataset", "SynthWordDataset"])
def test_an_exception_in_a_data_worker_names_dataset_sample_and_cause(dataset_type, train_lmdb):
    from mmengine.config import Config

    from ocrframe.registry import DATASETS

    charset = Config.fromfile(str(CONFIG)).charset
    if dataset_type == "LMDBDataset":
        dataset = DATASETS.build(dict(type="LMDBDataset", path=str(train_lmdb), charset=charset))
        key, name = "image-000000003", f"LMDB {train_lmdb}"
    else:
        dataset = DATASETS.build(dict(type="SynthWordDataset", charset=charset, length=8, seed=5))
        key, name = "5-2", "synthetic words (train assets, seed 5)"
    dataset.pipeline.transforms.append(FailsOn(key))
    loader = DataLoader(dataset, batch_size=4, num_workers=1, collate_fn=list)
    with pytest.raises(Exception) as error:
        list(loader)
    message = str(error.value)
    assert "DataLoader worker" in message
    assert f"{name}: sample {key} (index 2) failed: ZeroDivisionError: division by zero" in message


# -- checkpoint rotation -------------------------------------------------------------------------

def test_old_checkpoints_are_deleted_only_after_the_new_one_is_in_place(tmp_path, monkeypatch):
    """AtomicCheckpointHook keeps the last 2 of checkpoints written every iteration: whenever it
    deletes one, the newest is already a whole file and last_checkpoint already points at it, so a
    kill at any moment leaves a checkpoint to resume from."""
    from mmengine.model import BaseModel
    from mmengine.runner import Runner
    from torch import nn
    from torch.utils.data import TensorDataset

    from ocrframe.checkpoint import AtomicLocalBackend

    class Toy(BaseModel):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 1)

        def forward(self, inputs, data_samples=None, mode="tensor"):
            out = self.linear(inputs)
            return {"loss": out.pow(2).mean()} if mode == "loss" else out

    saved, removals = [], []
    real_remove = AtomicLocalBackend.remove

    def remove(backend, path):
        newest = saved[-1]
        removals.append(dict(removed=Path(path).name, newest=newest.name,
                             present=sorted(p.name for p in tmp_path.glob("iter_*.pth")),
                             newest_loads=load_checkpoint(newest)["meta"]["iter"] if newest.is_file() else None,
                             pointer=(tmp_path / "last_checkpoint").read_text() if (tmp_path / "last_checkpoint").is_file() else ""))
        real_remove(backend, path)

    monkeypatch.setattr(AtomicLocalBackend, "remove", remove)
    runner = Runner(model=Toy(), work_dir=str(tmp_path), experiment_name=f"rotation_{time.time_ns()}",
                    train_dataloader=DataLoader(TensorDataset(torch.randn(16, 2)), batch_size=4),
                    optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
                    train_cfg=dict(by_epoch=False, max_iters=5), default_scope="ocrframe",
                    default_hooks=dict(checkpoint=dict(type="AtomicCheckpointHook", by_epoch=False, interval=1,
                                                       max_keep_ckpts=2)))
    real_save = runner.save_checkpoint

    def save(out_dir, filename, *args, **kwargs):
        saved.append(Path(out_dir) / filename)
        return real_save(out_dir, filename, *args, **kwargs)

    runner.save_checkpoint = save
    runner.train()
    assert [p.name for p in saved] == [f"iter_{i}.pth" for i in range(1, 6)]
    assert [r["removed"] for r in removals] == ["iter_1.pth", "iter_2.pth", "iter_3.pth"]
    for removal in removals:
        iteration = int(removal["newest"][5:-4])
        # the new checkpoint is one of the 2 kept: the one deleted is the third newest, and two
        # others are on disk while it goes
        assert int(removal["removed"][5:-4]) == iteration - 2, removal
        assert removal["present"] == sorted(f"iter_{i}.pth" for i in range(iteration - 2, iteration + 1)), removal
        assert removal["newest_loads"] == iteration, removal  # the new checkpoint is whole before any deletion
        assert removal["pointer"].endswith(removal["newest"]), removal  # and resume would pick it
    assert sorted(p.name for p in tmp_path.glob("iter_*.pth")) == ["iter_4.pth", "iter_5.pth"]
