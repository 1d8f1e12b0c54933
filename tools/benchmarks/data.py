"""Data measurements recorded in docs/benchmarks.md: rendering and loading.

    python tools/benchmark.py render [--num 300]                    # synthetic word renderer
    python tools/benchmark.py data [--images 4096] [--rounds 5]     # LMDB loading: per worker, 1 -> 2 workers
    python tools/benchmark.py sampler [--size 100000000]            # the training order's first batch: lazy vs mmengine
"""
import os
import time
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config

from ocrframe.registry import MODELS

CONFIG = "configs/crnn_vgg_bilstm_ctc.py"


def render(args) -> None:
    from ocrframe.data.synth_text import WordRenderer, discover_assets

    renderer = WordRenderer(discover_assets("train"))
    start = time.perf_counter()
    for i in range(args.num):
        renderer.render(np.random.default_rng([0, i]))
    print(f"render: {args.num / (time.perf_counter() - start):.0f} images/s on one core")


def word_lmdb(directory: Path, count: int, image_format: str = "PNG", size: tuple[int, int] = (100, 32)) -> Path:
    """An LMDB of ``count`` rendered training words resized to ``size``, RGB, stored as PNG (as
    tools/make_synth.py writes) or JPEG (as Synth90k LMDBs hold them)."""
    import io

    from ocrframe.data.lmdb_dataset import write_lmdb
    from ocrframe.data.synthetic import SynthWordDataset

    words = SynthWordDataset(Config.fromfile(CONFIG).charset, seed=0)

    def samples():
        for index in range(count):
            sample = words.load(index)
            buffer = io.BytesIO()
            sample["image"].convert("RGB").resize(size).save(buffer, format=image_format)
            yield sample["key"], buffer.getvalue(), sample["text"], None

    path = directory / f"words_{size[0]}x{size[1]}_{image_format.lower()}.lmdb"
    write_lmdb(path, samples())
    return path


def worker_cpu_seconds(iterator) -> float:
    """CPU time (user + system) the DataLoader's worker processes have used so far (Linux)."""
    ticks = 0
    for worker in iterator._workers:
        fields = Path(f"/proc/{worker.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def data(args) -> None:
    """Images/s DataLoader workers read, decode and transform (the train pipeline: grayscale,
    100x32, tensor; batches of 64) from an LMDB of 100x32 word images, with 1 worker and with 2
    (the scaling). Each figure is the best of ``--rounds`` short passes over the LMDB. Per worker it
    is given twice: by the wall clock, which other load on the machine slows down, and per second
    of CPU time the workers used, which it disturbs much less. Then, unless ``--steps 0``, the
    images/s a training step of the paper CRNN consumes."""
    import tempfile

    from ocrframe.data.transforms import pad_collate
    from ocrframe.registry import DATASETS

    cfg = Config.fromfile(CONFIG)
    lmdb_path = Path(args.lmdb) if args.lmdb else word_lmdb(Path(tempfile.mkdtemp(prefix="ocrframe_bench_")),
                                                             args.images, args.format.upper())
    dataset = DATASETS.build(dict(type="LMDBDataset", path=str(lmdb_path), charset=cfg.charset,
                                  pipeline=cfg.train_pipeline))

    def images_per_second(workers: int) -> tuple[float, float]:
        """(images/s by the wall clock, images per worker CPU second), best of the rounds."""
        loader = torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True, num_workers=workers,
                                             persistent_workers=True, collate_fn=pad_collate, drop_last=True)
        wall = cpu = 0.0
        for _ in range(args.rounds):
            iterator = iter(loader)
            next(iterator)  # workers (re)started and busy
            start, cpu_start, count = time.perf_counter(), worker_cpu_seconds(iterator), 0
            for batch in iterator:
                count += len(batch["inputs"])
            wall = max(wall, count / (time.perf_counter() - start))
            cpu = max(cpu, count / max(worker_cpu_seconds(iterator) - cpu_start, 1e-9))
        return wall, cpu

    load_before = os.getloadavg()[0]
    (one, one_cpu), (two, two_cpu) = images_per_second(1), images_per_second(2)
    print(f"{lmdb_path.name}: {len(dataset)} word images of 100x32, train pipeline (grayscale, 100x32, tensor), "
          f"batch 64, best of {args.rounds} passes; load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after, {os.cpu_count()} cores")
    print("| DataLoader | images/s | per worker | per worker CPU second | vs 1 worker |\n|---|---|---|---|---|")
    print(f"| 1 worker | {one:.0f} | {one:.0f} | {one_cpu:.0f} | 1.00x |")
    print(f"| 2 workers | {two:.0f} | {two / 2:.0f} | {two_cpu:.0f} | {two / one:.2f}x |")
    if args.steps <= 0:
        return
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).train()
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    batch = pad_collate([dataset[i] for i in range(64)])
    for step in range(args.steps + 2):  # two warm-up steps
        if step == 2:
            start = time.perf_counter()
        loss = model(batch["inputs"], batch["data_samples"], mode="loss")["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    training = 64 * args.steps / (time.perf_counter() - start)
    print(f"training step (paper CRNN, batch 64, fp32, {torch.get_num_threads()} threads): {training:.0f} images/s; "
          f"1 worker loads {one / training:.1f}x that")


_FIRST_BATCH = """
import itertools, resource, sys, time
from mmengine.dataset import InfiniteSampler
from ocrframe.data.sampler import LazyInfiniteSampler
sampler_class = dict(LazyInfiniteSampler=LazyInfiniteSampler, InfiniteSampler=InfiniteSampler)[sys.argv[1]]
start = time.perf_counter()
sampler = sampler_class(range(int(sys.argv[2])), shuffle=True, seed=0)
list(itertools.islice(iter(sampler), 16))
print(f"{time.perf_counter() - start:.2f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f}")
"""


def sampler(args) -> None:
    """Time and peak memory until the first 16 indices of a shuffled training order, each sampler in
    a fresh process (the synthetic words' training set has 100M indices)."""
    import subprocess
    import sys

    for name in ("LazyInfiniteSampler", "InfiniteSampler"):
        out = subprocess.run([sys.executable, "-c", _FIRST_BATCH, name, str(args.size)], capture_output=True,
                             text=True, check=True).stdout.split()
        print(f"{name:>20}: {out[0]} s to the first batch of indices, peak RSS {out[1]} GB ({args.size:,} indices)")


def add_commands(sub) -> None:
    """This subject's sub-commands of tools/benchmark.py."""
    p = sub.add_parser("render")
    p.add_argument("--num", type=int, default=300)
    p.set_defaults(func=render)
    p = sub.add_parser("data")
    p.add_argument("--images", type=int, default=4096, help="100x32 words in the LMDB made for the run")
    p.add_argument("--format", default="png", choices=["png", "jpeg"], help="image format of the LMDB made")
    p.add_argument("--lmdb", help="an LMDB to read instead of making one")
    p.add_argument("--rounds", type=int, default=5, help="passes over the LMDB per figure; the best is kept")
    p.add_argument("--steps", type=int, default=4, help="timed training steps (0: none)")
    p.set_defaults(func=data)
    p = sub.add_parser("sampler")
    p.add_argument("--size", type=int, default=100_000_000, help="indices in the dataset")
    p.set_defaults(func=sampler)
