"""Data-parallel training on CPU with gloo, in real processes: 2 ranks started by
tools/dist_train.sh (torchrun) on the LMDB, and 2 ranks started as srun would (Slurm's environment)
on the synthetic words. Afterwards the ranks hold identical parameters, which training changed,
and within an epoch each sample was seen exactly once, by one rank.

Multi-GPU / NCCL cannot run here (no GPU): the CUDA branch of ocrframe/distributed.py is untested."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import CONFIG, REPO, TESTS

WORLD = 2
ITERS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def probe_config(tmp_path: Path) -> Path:
    """The paper config (ADADELTA; its dist_cfg says nccl, which must become gloo here) with a
    small BiLSTM, the rank probe hook, and a validation of 16 images at the end."""
    path = tmp_path / "probe_config.py"
    path.write_text(f"""
_base_ = [{str(CONFIG)!r}]
custom_imports = dict(imports=["rank_probe"], allow_failed_imports=False)
custom_hooks = [dict(type="RankProbeHook", out_dir={str(tmp_path / "probe")!r})]
model = dict(sequence_encoder=dict(hidden_size=32))
train_cfg = dict(max_iters={ITERS}, val_interval=1000)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1000))
train_dataloader = dict(num_workers=0, persistent_workers=False)
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(length=16))
""")
    return path


def environment(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") and not k.startswith("SLURM_")}
    return dict(env, PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
                OMP_NUM_THREADS="1", **extra)


def common_args(tmp_path: Path) -> list[str]:
    return ["--work-dir", str(tmp_path / "work"), "--schedule", "paper", "--no-test"]


def read_probe(tmp_path: Path) -> list[dict]:
    ranks = []
    for rank in range(WORLD):
        record = json.loads((tmp_path / "probe" / f"keys_rank{rank}.json").read_text())
        record.update(torch.load(tmp_path / "probe" / f"params_rank{rank}.pt", weights_only=True))
        ranks.append(record)
    return ranks


def check_ranks(ranks: list[dict], all_keys: set[str], batch_size: int) -> None:
    for rank, record in enumerate(ranks):
        assert (record["rank"], record["world_size"], record["backend"]) == (rank, WORLD, "gloo")
        assert record["wrapper"] == "AnyDeviceDDP"
        assert [len(batch) for batch in record["keys"]] == [batch_size] * ITERS
    # identical parameters on every rank, and training moved them
    first = ranks[0]["final"]
    for record in ranks[1:]:
        assert first.keys() == record["final"].keys()
        for name, tensor in first.items():
            assert torch.equal(tensor, record["final"][name]), name
    assert any(not torch.equal(first[n], ranks[0]["initial"][n]) for n in first)
    # one epoch = ITERS iterations of WORLD x batch_size: every sample exactly once, by one rank
    seen = [key for record in ranks for batch in record["keys"] for key in batch]
    assert len(seen) == len(all_keys) == WORLD * batch_size * ITERS
    assert set(seen) == all_keys  # with the count above: no key twice, so no key on both ranks


def test_torchrun_two_cpu_processes_on_the_lmdb(tmp_path, train_lmdb):
    command = [str(REPO / "tools" / "dist_train.sh"), str(probe_config(tmp_path)), str(WORLD), *common_args(tmp_path),
               "--data", str(train_lmdb), "--cfg-options", "train_dataloader.batch_size=8"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=240,
                            env=environment(PYTHON=sys.executable, PORT=str(free_port())))
    assert result.returncode == 0, result.stderr[-4000:]
    check_ranks(read_probe(tmp_path), {f"image-{i:09d}" for i in range(1, 65)}, batch_size=8)
    assert "distributed backend gloo instead of the config's nccl" in result.stdout + result.stderr


def test_two_ranks_one_writer_and_the_worst_errors_of_the_whole_test_set(tmp_path, train_lmdb, val_lmdb):
    """2 gloo ranks train 2 iterations (rank 1's first batch has a NaN pixel), validate and test
    with the curve-plot and worst-errors hooks. Only rank 0 writes curves.png and worst_errors.png;
    the grid is drawn from both ranks' halves of the 16 test images; the NaN batch runs through the
    network on its rank too, so a collective inside the forward pass (as SyncBatchNorm's) never
    waits, and both ranks skip that step."""
    config = tmp_path / "hooks_config.py"
    config.write_text(f"""
_base_ = [{str(CONFIG)!r}]
custom_imports = dict(imports=["rank_probe"], allow_failed_imports=False)
custom_hooks = [dict(type="CurvePlotHook"), dict(type="WorstErrorsHook", num=100),
                dict(type="FileWriteProbeHook", out_dir={str(tmp_path / "probe")!r})]
model = dict(sequence_encoder=dict(hidden_size=16, num_layers=1))
train_cfg = dict(max_iters=2, val_interval=2)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1000, save_last=False, save_best=None))
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False)
val_dataloader = dict(num_workers=0, persistent_workers=False, batch_size=4)
test_dataloader = dict(num_workers=0, persistent_workers=False, batch_size=4, dataset=dict(
    _delete_=True, type="LMDBDataset", path={str(val_lmdb)!r}, charset={{{{_base_.charset}}}},
    pipeline={{{{_base_.test_pipeline}}}}))
env_cfg = dict(dist_cfg=dict(timeout=60))
""")
    command = [str(REPO / "tools" / "dist_train.sh"), str(config), str(WORLD), "--work-dir", str(tmp_path / "work"),
               "--schedule", "paper", "--data", str(train_lmdb), "--val-data", str(val_lmdb)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                            env=environment(PYTHON=sys.executable, PORT=str(free_port())))
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    ranks = [json.loads((tmp_path / "probe" / f"writes_rank{r}.json").read_text()) for r in range(WORLD)]
    assert "plot_curves" in ranks[0]["writes"] and "save_grid" in ranks[0]["writes"]
    assert ranks[1]["writes"] == []
    assert (tmp_path / "work" / "curves.png").is_file() and (tmp_path / "work" / "worst_errors.png").is_file()
    assert re.search(r"worst_errors\.png: the 16 worst of 16 misreadings among 16 test images", log)
    assert ranks[0]["collectives"] == ranks[1]["collectives"] == 2  # both ranks ran both forward passes
    assert ranks[0]["skipped_steps"] == ranks[1]["skipped_steps"] == 1
    assert "non-finite pixels in 1 image(s)" in log


def test_slurm_launcher_two_cpu_processes_on_synthetic_words(tmp_path):
    port, config = str(free_port()), probe_config(tmp_path)
    ranks = []
    for rank in range(WORLD):  # as srun starts them: same command, rank in SLURM_PROCID
        with open(tmp_path / f"rank{rank}.log", "w") as log:
            ranks.append(subprocess.Popen(
                [sys.executable, str(REPO / "tools" / "train.py"), str(config), "--launcher", "slurm",
                 *common_args(tmp_path), "--cfg-options", "train_dataloader.batch_size=4",
                 "train_dataloader.dataset.length=32"],
                stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
                env=environment(SLURM_PROCID=str(rank), SLURM_LOCALID=str(rank), SLURM_NTASKS=str(WORLD),
                                MASTER_ADDR="127.0.0.1", MASTER_PORT=port)))
    try:
        for rank, process in enumerate(ranks):
            assert process.wait(timeout=240) == 0, (tmp_path / f"rank{rank}.log").read_text()[-4000:]
    finally:
        for process in ranks:  # a rank left waiting for a failed peer
            if process.poll() is None:
                process.kill()
    check_ranks(read_probe(tmp_path), {f"0-{i}" for i in range(32)}, batch_size=4)


def test_slurm_launcher_outside_srun_says_how_to_start_it(tmp_path, monkeypatch):
    from ocrframe.distributed import init_cpu_process_group

    for name in ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match=r"--launcher slurm needs SLURM_PROCID.*tools/slurm_train.sh"):
        init_cpu_process_group("slurm")


def test_pytorch_launcher_outside_torchrun_says_how_to_start_it(monkeypatch):
    from ocrframe.distributed import init_cpu_process_group

    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ValueError, match=r"--launcher pytorch needs \$RANK.*tools/dist_train.sh"):
        init_cpu_process_group("pytorch")
