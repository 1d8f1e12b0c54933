"""Training measurements recorded in docs/benchmarks.md.

    python tools/benchmark.py train-step [--batch 64] [--width 100] [--iters 4]   # memory format x precision
    python tools/benchmark.py train-recipe [--batches 16 64]        # batch size x batch norm x alignment probe
    python tools/benchmark.py train-compile [--batch 16]            # the recipe's step: eager vs torch.compile
    python tools/benchmark.py runner [--iters 20] [--rounds 2]       # mmengine Runner vs a bare PyTorch loop
    python tools/benchmark.py distributed [--iters 16]              # 2 gloo processes vs 1 process
"""
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config

from ocrframe.registry import MODELS

CONFIG = "configs/crnn_vgg_bilstm_ctc.py"


def train_step(args) -> None:
    """Images/s of one training step of the paper CRNN for each memory format and precision."""
    model_cfg = Config.fromfile(CONFIG).model
    rng = np.random.default_rng(0)
    texts = ["".join(rng.choice(list("abcdefghij"), 6)) for _ in range(args.batch)]
    samples = dict(texts=texts, keys=texts, widths=torch.full((args.batch,), args.width))
    images = torch.randn(args.batch, 1, 32, args.width)
    from ocrframe.optim import native_bf16

    precisions = (False, True) if native_bf16("cpu") else (False,)
    if len(precisions) == 1:
        print("bf16 rows left out: this CPU has no fast bf16 kernels (AutocastOptimWrapper trains in fp32 here)")
    rows = []
    for channels_last, bf16 in itertools.product((False, True), precisions):
        torch.manual_seed(0)
        model = MODELS.build(dict(model_cfg, channels_last=channels_last))
        optimizer = torch.optim.Adam(model.parameters(), 1e-3)
        for step in range(args.iters + 2):  # two warm-up steps
            if step == 2:
                start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = model(images, samples, mode="loss")["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        rows.append((channels_last, bf16, args.batch * args.iters / (time.perf_counter() - start)))
    base = rows[0][2]
    print("| channels_last | bf16 autocast | images/s | vs fp32 contiguous |\n|---|---|---|---|")
    for channels_last, bf16, rate in rows:
        print(f"| {'yes' if channels_last else 'no'} | {'yes' if bf16 else 'no'} | {rate:.0f} | {rate / base:.1f}x |")


def train_recipe(args) -> None:
    """Images/s of one training step (channels_last, bf16 autocast where native) for the CPU recipe's
    choices side by side: batch size, batch norm placement, the alignment probe. Interleaved rounds,
    best of them, so load from other work disturbs every variant alike."""
    from ocrframe.optim import native_bf16

    model_cfg = Config.fromfile(CONFIG).model
    bf16 = native_bf16("cpu")
    variants = [(batch, bn, align) for batch in args.batches for bn, align in
                (("paper", 0.0), ("all", 0.0), ("all", 1.0))]
    setups = {}
    for batch, bn, align in variants:
        torch.manual_seed(0)
        model = MODELS.build(dict(model_cfg, alignment_loss=align, backbone_defaults=dict(batch_norm=bn)))
        rng = np.random.default_rng(0)
        texts = ["".join(rng.choice(list("abcdefghij"), 6)) for _ in range(batch)]
        samples = dict(texts=texts, keys=texts, widths=torch.full((batch,), 100),
                       char_x=[[(i + 0.5) / 6 for i in range(6)]] * batch)
        setups[batch, bn, align] = (model, torch.optim.Adam(model.parameters(), 1e-3),
                                    torch.randn(batch, 1, 32, 100), samples)
    best = {v: 0.0 for v in variants}
    for _ in range(args.rounds):
        for variant in variants:
            model, optimizer, images, samples = setups[variant]
            for step in range(args.steps + 1):  # one warm-up step
                if step == 1:
                    start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    losses = model(images, samples, mode="loss")
                optimizer.zero_grad()
                sum(losses.values()).backward()
                optimizer.step()
            rate = variant[0] * args.steps / (time.perf_counter() - start)
            best[variant] = max(best[variant], rate)
    base = best[variants[0]]
    print(f"{'bf16 autocast' if bf16 else 'fp32 (no native bf16)'}, channels_last, best of {args.rounds} rounds")
    print("| batch | batch norm | alignment probe | images/s | vs first row |\n|---|---|---|---|---|")
    for batch, bn, align in variants:
        rate = best[batch, bn, align]
        print(f"| {batch} | {bn} | {'yes' if align else 'no'} | {rate:.1f} | {rate / base:.2f}x |")


def train_compile(args) -> None:
    """Iterations/s of the CPU recipe's training step (batch norm after every conv, alignment probe,
    channels_last, bf16 autocast where native) eager, with the whole model under ``torch.compile``
    and with only the backbone under it (the recurrent layers stay eager). Interleaved rounds, best
    of them; the first steps of each variant, compilation included, are timed apart."""
    from ocrframe.optim import native_bf16

    model_cfg = Config.fromfile(CONFIG).model
    bf16 = native_bf16("cpu")
    rng = np.random.default_rng(0)
    texts = ["".join(rng.choice(list("abcdefghij"), 6)) for _ in range(args.batch)]
    samples = dict(texts=texts, keys=texts, widths=torch.full((args.batch,), 100),
                   char_x=[[(i + 0.5) / 6 for i in range(6)]] * args.batch)
    images = torch.randn(args.batch, 1, 32, 100)

    def build(variant):
        torch.manual_seed(0)
        model = MODELS.build(dict(model_cfg, alignment_loss=1.0, backbone_defaults=dict(batch_norm="all"))).train()
        forward = model
        if variant == "whole model":
            forward = torch.compile(model)
        elif variant == "backbone only":
            model.backbone = torch.compile(model.backbone)
        return forward, torch.optim.Adam(model.parameters(), 1e-3)

    def steps(forward, optimizer, count):
        start = time.perf_counter()
        for _ in range(count):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = sum(forward(images, samples, mode="loss").values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return time.perf_counter() - start

    variants = ["eager", "whole model", "backbone only"]
    setups, first = {}, {}
    for variant in variants:
        setups[variant] = build(variant)
        first[variant] = steps(*setups[variant], 3)  # compiles (forward and backward) on the first step
    best = dict.fromkeys(variants, 0.0)
    for _ in range(args.rounds):
        for variant in variants:
            best[variant] = max(best[variant], args.steps / steps(*setups[variant], args.steps))
    print(f"batch {args.batch}, {'bf16 autocast' if bf16 else 'fp32 (no native bf16)'}, channels_last, "
          f"best of {args.rounds} rounds of {args.steps} steps")
    print("| torch.compile | first 3 steps (s) | iterations/s | vs eager |\n|---|---|---|---|")
    for variant in variants:
        print(f"| {variant} | {first[variant]:.1f} | {best[variant]:.2f} | {best[variant] / best['eager']:.2f}x |")


def benchmark_lmdb(directory: Path, count: int) -> Path:
    """An LMDB of ``count`` rendered training words (as tools/make_synth.py writes them)."""
    from ocrframe.data.lmdb_dataset import encoded_samples, write_lmdb
    from ocrframe.data.synthetic import SynthWordDataset

    path = directory / "words.lmdb"
    write_lmdb(path, encoded_samples(SynthWordDataset(Config.fromfile(CONFIG).charset, seed=0), count), overwrite=True)
    return path


def runner(args) -> None:
    """Images/s of training with the Runner (tools/train.py's path: config, hooks, logging, its
    dataloader) against a bare PyTorch loop over the same model, data, optimizer and dataloader
    settings. Rounds alternate; the best of each is kept. The first 3 iterations are warm-up."""
    import tempfile

    from mmengine.hooks import Hook

    from ocrframe.data.transforms import pad_collate
    from ocrframe.registry import DATASETS
    from ocrframe.runner import build_runner, load_config

    work = Path(tempfile.mkdtemp(prefix="ocrframe_bench_"))
    lmdb_path = benchmark_lmdb(work, args.images)
    options = {"train_cfg.max_iters": args.iters, "train_cfg.val_interval": 10**6,
               "default_hooks.checkpoint.interval": 10**6, "default_hooks.checkpoint.save_last": False,
               "default_hooks.logger.interval": 10, "val_dataloader.dataset.length": 64}
    warmup = 3

    class Timer(Hook):
        priority = "LOWEST"

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            if runner.iter + 1 == warmup:
                self.start = time.perf_counter()
            elif runner.iter + 1 == args.iters:
                self.seconds = time.perf_counter() - self.start

    def with_runner(round_: int) -> float:
        cfg = load_config(CONFIG, schedule="cpu", work_dir=str(work / f"runner{round_}"), cfg_options=options,
                          train_data=[str(lmdb_path)])
        cfg.custom_hooks = []  # curve plot, worst errors, time budget: not per-iteration work
        run = build_runner(cfg)
        timer = Timer()
        run.register_hook(timer)
        run.train()
        return cfg.train_dataloader.batch_size * (args.iters - warmup) / timer.seconds

    def bare(round_: int) -> float:
        cfg = load_config(CONFIG, schedule="cpu", train_data=[str(lmdb_path)])
        loader_cfg = cfg.train_dataloader
        torch.manual_seed(0)
        model = MODELS.build(cfg.model).train()
        optimizer = torch.optim.Adam(model.parameters(), 1e-3)
        loader = torch.utils.data.DataLoader(
            DATASETS.build(loader_cfg.dataset), batch_size=loader_cfg.batch_size, shuffle=True, drop_last=True,
            num_workers=loader_cfg.num_workers, persistent_workers=loader_cfg.num_workers > 0,
            collate_fn=pad_collate)
        batches = itertools.chain.from_iterable(itertools.repeat(loader))
        for step in range(args.iters):
            if step == warmup:
                start = time.perf_counter()
            data = next(batches)
            loss = model(data["inputs"], data["data_samples"], mode="loss")["loss"]
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)  # as the CPU schedule
            optimizer.step()
        return loader_cfg.batch_size * (args.iters - warmup) / (time.perf_counter() - start)

    best = {"bare PyTorch loop": 0.0, "mmengine Runner (tools/train.py)": 0.0}
    for round_ in range(args.rounds):
        best["bare PyTorch loop"] = max(best["bare PyTorch loop"], bare(round_))
        best["mmengine Runner (tools/train.py)"] = max(best["mmengine Runner (tools/train.py)"], with_runner(round_))
    base = best["bare PyTorch loop"]
    print(f"\npaper CRNN, CPU schedule, batch 64 from an LMDB of {args.images} images, "
          f"{args.iters - warmup} timed iterations, best of {args.rounds} rounds, {torch.get_num_threads()} threads")
    print("| loop | images/s | vs bare loop |\n|---|---|---|")
    for name, rate in best.items():
        print(f"| {name} | {rate:.1f} | {rate / base:.3f}x |")


def distributed(args) -> None:
    """Training images/s of 2 processes with gloo (tools/dist_train.sh, half the cores each, batch 64
    per process) against 1 process (tools/train.py, all cores, batch 64), from the runner's own
    per-iteration times (median after 3 warm-up iterations) on an LMDB."""
    import json
    import subprocess
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="ocrframe_bench_"))
    lmdb_path = benchmark_lmdb(work, args.images)
    threads = os.cpu_count()  # tools/dist_train.sh gives each of its processes an equal share
    each = max(threads // 2, 1)
    options = ["--schedule", "cpu", "--no-test", "--data", str(lmdb_path), "--cfg-options",
               f"train_cfg.max_iters={args.iters}", "train_cfg.val_interval=1000000",
               "default_hooks.checkpoint.interval=1000000", "default_hooks.checkpoint.save_last=False",
               "default_hooks.logger.interval=1", "train_dataloader.num_workers=1",
               "val_dataloader.dataset.length=64"]  # the loop validates once at the end, after the timing
    commands = {
        f"1 process, {threads} threads": [sys.executable, "tools/train.py", CONFIG],
        f"2 processes (gloo), {each} thread{'s' * (each != 1)} each": ["tools/dist_train.sh", CONFIG, "2"],
    }
    rows = []
    for name, command in commands.items():
        work_dir = work / name.split(",")[0].replace(" ", "_")
        env = dict(os.environ, PYTHON=sys.executable)
        env.pop("OMP_NUM_THREADS", None)
        subprocess.run([*command, "--work-dir", str(work_dir), *options], check=True, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        (scalars,) = work_dir.glob("*/vis_data/scalars.json")
        times = sorted(r["time"] for r in map(json.loads, scalars.read_text().splitlines()) if r.get("iter", 0) > 3)
        processes = 2 if "2 processes" in name else 1
        rows.append((name, processes * 64 / times[len(times) // 2]))
    print(f"paper CRNN, CPU schedule, batch 64 per process, LMDB of {args.images} images, {args.iters} iterations")
    print("| training | images/s (all processes) | vs 1 process |\n|---|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:.1f} | {rate / rows[0][1]:.2f}x |")


def add_commands(sub) -> None:
    """This subject's sub-commands of tools/benchmark.py."""
    p = sub.add_parser("train-step")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--width", type=int, default=100, help="image width (height 32)")
    p.add_argument("--iters", type=int, default=4)
    p.set_defaults(func=train_step)
    p = sub.add_parser("train-recipe")
    p.add_argument("--batches", type=int, nargs="+", default=[16, 64])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.set_defaults(func=train_recipe)
    p = sub.add_parser("train-compile")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.set_defaults(func=train_compile)
    p = sub.add_parser("runner")
    p.add_argument("--iters", type=int, default=20, help="iterations per run (3 of them warm-up)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--images", type=int, default=1024, help="rendered words in the LMDB")
    p.set_defaults(func=runner)
    p = sub.add_parser("distributed")
    p.add_argument("--iters", type=int, default=16)
    p.add_argument("--images", type=int, default=1024)
    p.set_defaults(func=distributed)
