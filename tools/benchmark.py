"""Measurements recorded in docs/benchmarks.md, each printed side by side in one run.

    python tools/benchmark.py train-step [--batch 64] [--iters 4]   # memory format x precision
    python tools/benchmark.py train-recipe [--batches 16 64]        # batch size x batch norm x alignment probe
    python tools/benchmark.py render [--num 300]                    # synthetic word renderer
    python tools/benchmark.py infer [--checkpoint CKPT] [--val 1000] [--onnx] [--int8]   # Reader vs eager
    python tools/benchmark.py omr-render [--lines 20]               # engraved music: lines and snippets
    python tools/benchmark.py omr-staff [--num 200]                 # staff finder on held-out incipits
    python tools/benchmark.py runner [--iters 20] [--rounds 2]       # mmengine Runner vs a bare PyTorch loop
    python tools/benchmark.py data [--images 4096] [--rounds 5]     # LMDB loading: per worker, 1 -> 2 workers
    python tools/benchmark.py distributed [--iters 16]              # 2 gloo processes vs 1 process
    python tools/benchmark.py lexicon [--queries 1000] [--delta 3]  # words within delta: BK-tree, scans, ours
    python tools/benchmark.py beam [--num 1000] [--width 10]        # prefix beam search vs pyctcdecode, flashlight
    python tools/benchmark.py greedy [--num 10000]                  # best path decoding

lexicon and beam compare with libraries used only here: pip install 'ocrframe[bench]', and
pyctcdecode without its numpy<2 pin: pip install --no-deps pyctcdecode pygtrie
"""
import argparse
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
    samples = dict(texts=texts, keys=texts, widths=torch.full((args.batch,), 100))
    images = torch.randn(args.batch, 1, 32, 100)
    from ocrframe.engine import native_bf16

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
    from ocrframe.engine import native_bf16

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


def render(args) -> None:
    from ocrframe.data.synth_text import WordRenderer, discover_assets

    renderer = WordRenderer(discover_assets("train"))
    start = time.perf_counter()
    for i in range(args.num):
        renderer.render(np.random.default_rng([0, i]))
    print(f"render: {args.num / (time.perf_counter() - start):.0f} images/s on one core")


def infer(args) -> None:
    """The Reader against a plain eager forward of the same model (fp32, contiguous), batch 64 and
    batch 1 of the config's test images squeezed to 32x100, then greedy transcriptions of each path
    on test images read as they are."""
    import tempfile

    from ocrframe.engine import native_bf16
    from ocrframe.inference import Reader, load_model, onnx_model_for
    from ocrframe.runner import build_dataset

    if args.checkpoint:
        model, cfg = load_model(args.checkpoint)
        weights = args.checkpoint
    else:
        cfg = Config.fromfile(CONFIG)
        torch.manual_seed(0)
        model, weights = MODELS.build(cfg.model).eval(), "random initialisation (the equality check needs trained weights)"
    eager = MODELS.build(dict(cfg.model, channels_last=False)).eval()
    eager.load_state_dict(model.state_dict())
    native = native_bf16("cpu")
    print(f"weights: {weights}\n{torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {'yes' if native else 'no (emulated: slow)'}")
    readers = {"fp32": Reader(model, cfg.test_pipeline, precision="fp32"),
               "bf16": Reader(model, cfg.test_pipeline, precision="bf16")}
    scratch = tempfile.TemporaryDirectory()
    checkpoint = args.checkpoint or Path(scratch.name) / "random.pth"
    if not args.checkpoint:
        torch.save(dict(state_dict=model.state_dict()), checkpoint)
    if args.onnx:
        readers["fp32, onnxruntime"] = Reader(model, cfg.test_pipeline, precision="fp32", runtime="onnxruntime",
                                              onnx_model=onnx_model_for(checkpoint, model, cfg))
    if args.int8:
        int8_model = onnx_model_for(checkpoint, model, cfg, int8=True)
        readers["int8"] = Reader(model, cfg.test_pipeline, precision="int8", onnx_model=int8_model)
        alone = Reader(model, cfg.test_pipeline, precision="int8", onnx_model=int8_model, recheck_margin=-float("inf"))

    test = build_dataset(cfg.test_dataloader.dataset, raw=True)
    picked = np.linspace(0, len(test) - 1, min(args.val, len(test))).round().astype(int)
    images = [test[int(i)]["image"] for i in picked]
    # Real images (the int8 recheck depends on them), all 32x100 as in training the paper CRNN.
    (batch64,) = map(torch.from_numpy, readers["fp32"].input_batches([im.resize((100, 32)) for im in images[:64]]))
    variants = {"eager fp32 (baseline)": lambda x: eager(x)}
    variants.update({f"Reader {name}": (lambda r: lambda x: r.log_probs(x))(r) for name, r in readers.items()
                     if name != "bf16" or native})  # emulated bf16 is several times slower than fp32: not timed
    if args.int8:
        variants["int8 alone (no fp32 recheck)"] = alone.log_probs
    print("\n| path | batch 64: images/s | vs eager | batch 1: ms/image | vs eager |\n|---|---|---|---|---|")
    rows = {}
    with torch.inference_mode():
        for batch, repeats in ((batch64, args.iters), (batch64[:1], args.iters * 16)):
            for fn in variants.values():  # warm-up
                fn(batch)
            best = {name: float("inf") for name in variants}
            for _ in range(3):  # interleaved rounds, best of each: robust to other jobs on the machine
                for name, fn in variants.items():
                    start = time.perf_counter()
                    for _ in range(repeats):
                        fn(batch)
                    best[name] = min(best[name], (time.perf_counter() - start) / repeats / len(batch))
            for name, seconds in best.items():
                rows.setdefault(name, []).append(seconds)
    base64, base1 = rows["eager fp32 (baseline)"]
    for name, (s64, s1) in rows.items():
        print(f"| {name} | {1 / s64:.0f} | {base64 / s64:.2f}x | {s1 * 1e3:.1f} | {base1 / s1:.2f}x |")

    # Greedy transcriptions of the config's test images (spread over its splits), read end to end:
    # aspect ratio kept, width-bucketed batches.
    reference = Reader(eager, cfg.test_pipeline, precision="fp32").read(images)
    print(f"\ngreedy transcriptions of {len(images)} test images (aspect ratio kept) vs eager fp32:")
    for name, reader in readers.items():
        if name == "bf16" and not native:
            continue
        reader.rechecked = 0
        start = time.perf_counter()
        texts = [p.text for p in reader.read(images)]
        elapsed = time.perf_counter() - start
        differ = sum(a != b.text for a, b in zip(texts, reference))
        print(f"  Reader {name}: {differ} differ; {len(images) / elapsed:.0f} images/s end to end"
              + (f"; {reader.rechecked} images rechecked in fp32" if name in ("bf16", "int8") else ""))
    if args.int8:
        differ = sum(a.text != b.text for a, b in zip(alone.read(images), reference))
        print(f"  int8 alone (no fp32 recheck): {differ} differ")
    scratch.cleanup()


def omr_render(args) -> None:
    """Engraving a line (verovio + cairosvg) against cutting and augmenting a snippet from it, per style."""
    from ocrframe_omr.render import STYLES, MusicRenderer

    print("| style | engrave a line (ms) | cut + augment a snippet (ms) |\n|---|---|---|")
    for style in STYLES:
        renderer = MusicRenderer(style)
        renderer.line(np.random.default_rng([0, 0]))  # verovio's start-up
        start = time.perf_counter()
        lines = [renderer.line(np.random.default_rng([0, i])) for i in range(args.lines)]
        per_line = (time.perf_counter() - start) / args.lines
        start = time.perf_counter()
        for i in range(8 * args.lines):
            renderer.snippet(lines[i % args.lines], np.random.default_rng([1, i]))
        per_snippet = (time.perf_counter() - start) / (8 * args.lines)
        print(f"| {style} | {per_line * 1000:.0f} | {per_snippet * 1000:.1f} |")


def omr_staff(args) -> None:
    """The staff finder (StaffNormalize's) on the held-out incipits, against the engraved geometry:
    how often it finds the staff, and its errors in staff spaces. Camera images are warped after
    engraving, so there only the staff space is compared (rotation and perspective keep it within
    a few per cent)."""
    from ocrframe_omr.render import MusicRenderer
    from ocrframe_omr.staff import find_staff

    clean, camera = MusicRenderer("clean", assets="heldout"), MusicRenderer("camera", assets="heldout")
    rows = {"clean": [], "camera": []}
    seconds = {"clean": 0.0, "camera": 0.0}
    for i in range(args.num):
        rng = np.random.default_rng([args.seed, i, 1 << 34])  # tools/make_omr_primus.py's incipit i
        incipit = clean.incipit(rng)
        for name, renderer in (("clean", clean), ("camera", camera)):
            gray = np.asarray(renderer.finish(incipit.ink, incipit.space, rng).convert("L"))
            start = time.perf_counter()
            staff = find_staff(gray)
            seconds[name] += time.perf_counter() - start
            if staff is None:
                rows[name].append(None)
                continue
            centre = gray.shape[1] / 2 * np.tan(np.radians(staff.skew_deg))  # lines at the image's centre
            rows[name].append((abs(staff.top + centre - incipit.staff[0]) / incipit.space,
                               abs(staff.bottom + centre - incipit.staff[1]) / incipit.space,
                               abs(staff.space / incipit.space - 1), gray.shape[0] / incipit.space))
    print(f"{args.num} held-out incipits (seed {args.seed}); errors in staff spaces, space error relative")
    print("| images | staff found | top line error (mean / max) | bottom line error (mean / max) | "
          "space error (mean / max) | image height (spaces) | ms per image |\n|---|---|---|---|---|---|---|")
    for name, found in rows.items():
        ok = np.array([r for r in found if r is not None]).reshape(-1, 4)
        cells = [f"{ok[:, k].mean():.3f} / {ok[:, k].max():.3f}" if len(ok) else "-" for k in range(3)]
        if name == "camera":
            cells[:2] = ["(warped)", "(warped)"]
        height = f"{ok[:, 3].min():.1f}-{ok[:, 3].max():.1f}" if len(ok) else "-"
        print(f"| {name} | {len(ok)}/{len(found)} | {' | '.join(cells)} | {height} | "
              f"{seconds[name] / len(found) * 1000:.0f} |")


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


CHARSET = "0123456789abcdefghijklmnopqrstuvwxyz"
HUNSPELL = "/usr/share/hunspell/en_US.dic"


def need(module: str, package: str):
    """Import a benchmark-only library, or stop with what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        sys.exit(f"this benchmark needs {package}: pip install 'ocrframe[bench]' "
                 "(pyctcdecode: pip install --no-deps pyctcdecode pygtrie)")


def edited_queries(words: list[str], count: int, max_edits: int, seed: int = 0) -> list[str]:
    """Lexicon words with 0..max_edits random insertions, deletions or substitutions each."""
    rng = np.random.default_rng(seed)
    queries = []
    for _ in range(count):
        word = list(words[rng.integers(len(words))])
        for _ in range(rng.integers(max_edits + 1)):
            kind, at = rng.integers(3), int(rng.integers(len(word) + 1))
            if kind == 0 or not word:
                word.insert(at, CHARSET[rng.integers(len(CHARSET))])
            elif kind == 1:
                del word[min(at, len(word) - 1)]
            else:
                word[min(at, len(word) - 1)] = CHARSET[rng.integers(len(CHARSET))]
        queries.append("".join(word))
    return queries


def lexicon(args) -> None:
    """Words within delta of each query on the Hunspell lexicon: our banded search, the BK-tree,
    a brute-force editdistance scan and rapidfuzz, side by side; candidates must agree. One
    thread except the last row."""
    import editdistance
    from ocrframe_ctc.lexicon import BandedIndex, BKTree, Lexicon

    from ocrframe import Charset

    rapidfuzz = need("rapidfuzz", "rapidfuzz")
    from rapidfuzz.distance import Levenshtein

    torch.set_num_threads(1)
    if not Path(args.lexicon).is_file():
        sys.exit(f"{args.lexicon} does not exist: apt-get install hunspell-en-us (setup/debian-packages.txt)")
    start = time.perf_counter()
    words = Lexicon.load(args.lexicon, Charset(CHARSET, case="lower"), warn=False).words
    print(f"{args.lexicon}: {len(words)} distinct words in the 36-symbol charset (loaded in "
          f"{time.perf_counter() - start:.1f} s); {args.queries} queries with 0-3 random edits, delta {args.delta}\n")
    queries = edited_queries(words, args.queries, 3)
    sample = queries[: args.slow]  # the slow methods answer these only

    start = time.perf_counter()
    banded = BandedIndex(words, workers=1)
    build = time.perf_counter() - start
    banded.search_many(queries[:50], args.delta)  # fills the band cache, as a decoder's first batch does
    start = time.perf_counter()
    ours = banded.search_many(queries, args.delta)
    ours_ms = (time.perf_counter() - start) * 1000 / len(queries)
    banded.workers = -1  # the LexiconDecoder default: all cores
    start = time.perf_counter()
    ours_all_cores = banded.search_many(queries, args.delta)
    all_cores_ms = (time.perf_counter() - start) * 1000 / len(queries)

    start = time.perf_counter()
    whole = rapidfuzz.process.cdist(queries, words, scorer=Levenshtein.distance, score_cutoff=args.delta,
                                    dtype=np.uint8, workers=1)
    cdist_ms = (time.perf_counter() - start) * 1000 / len(queries)
    cdist_found = [np.flatnonzero(row <= args.delta).tolist() for row in whole]

    start = time.perf_counter()
    extract = [sorted(i for _, _, i in rapidfuzz.process.extract(q, words, scorer=Levenshtein.distance,
                                                                   score_cutoff=args.delta, limit=None))
               for q in sample]
    extract_ms = (time.perf_counter() - start) * 1000 / len(sample)

    start = time.perf_counter()
    brute = [[i for i, w in enumerate(words) if editdistance.eval(q, w) <= args.delta] for q in sample]
    brute_ms = (time.perf_counter() - start) * 1000 / len(sample)

    start = time.perf_counter()
    tree = BKTree(words)
    tree_build = time.perf_counter() - start
    start, visited, tree_found = time.perf_counter(), 0, []
    for q in sample:
        tree_found.append(tree.search(q, args.delta))
        visited += tree.visited
    tree_ms = (time.perf_counter() - start) * 1000 / len(sample)

    assert tree_found == brute, "BK-tree candidates differ from the brute-force scan"
    assert extract == brute, "rapidfuzz extract candidates differ from the brute-force scan"
    assert ours[: len(sample)] == brute, "banded candidates differ from the brute-force scan"
    assert ours == cdist_found == ours_all_cores, "banded candidates differ from rapidfuzz cdist over the whole lexicon"
    mean = sum(map(len, ours)) / len(ours)
    print(f"candidates identical to the brute-force scan on the first {len(sample)} queries and to a full "
          f"rapidfuzz cdist on all {len(queries)}; {mean:.1f} candidates per query on average\n")
    print("| method | ms per query | queries/s | vs brute force | notes |\n|---|---|---|---|---|")
    rows = [("brute-force editdistance scan", brute_ms, f"{len(sample)} queries"),
            ("BK-tree (the paper's), Python + editdistance", tree_ms,
             f"visits {visited / len(sample) / len(words):.0%} of the lexicon; built in {tree_build:.1f} s"),
            ("rapidfuzz process.extract, one query at a time", extract_ms, f"{len(sample)} queries"),
            ("rapidfuzz process.cdist, whole lexicon, batched", cdist_ms, f"{len(queries)} queries"),
            ("ours: length bands + rapidfuzz cdist, batched, one thread", ours_ms,
             f"{len(queries)} queries; index built in {build * 1000:.0f} ms"),
            (f"ours, on all {os.cpu_count()} cores (LexiconDecoder default)", all_cores_ms, f"{len(queries)} queries")]
    for name, ms, note in rows:
        print(f"| {name} | {ms:.3f} | {1000 / ms:.0f} | {brute_ms / ms:.1f}x | {note} |")
    print(f"\ngoal <= 1 ms per query on this machine: {'met' if all_cores_ms <= 1 else 'NOT met'} "
          f"({all_cores_ms:.3f} ms on {os.cpu_count()} cores, {ours_ms:.3f} ms on one)")


def peaked_log_probs(num: int, frames: int, classes: int, seed: int, peaked: bool) -> torch.Tensor:
    """Flat: log-softmax of standard normal logits. Peaked (trained-model-like): one class per
    frame (blank half the time) gets +8 on top."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(num, frames, classes, generator=generator)
    if peaked:
        winner = torch.randint(1, classes, (num, frames), generator=generator)
        winner[torch.rand(num, frames, generator=generator) < 0.5] = 0
        logits.scatter_add_(2, winner[..., None], torch.full((num, frames, 1), 8.0))
    return logits.log_softmax(-1)


def collapse(path, blank: int) -> list[int]:
    return [c for i, c in enumerate(path) if c != blank and (i == 0 or c != path[i - 1])]


def beam(args) -> None:
    """Prefix beam search, width 10, T=26, 37 classes: ours (batched tensor ops) against
    pyctcdecode (no LM) and flashlight-text's C++ LexiconFreeDecoder (ZeroLM), one thread each."""
    from ocrframe_ctc import BeamSearchDecoder

    from ocrframe import Charset

    pyctcdecode = need("pyctcdecode", "pyctcdecode")
    fl = need("flashlight.lib.text.decoder", "flashlight-text")
    import logging

    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    charset = Charset(CHARSET, blank="first")
    blank, classes, frames = charset.blank, charset.num_classes, 26
    ours = BeamSearchDecoder(charset, beam_width=args.width)
    labels = [""] + list(CHARSET)  # pyctcdecode: "" is the blank
    py = pyctcdecode.build_ctcdecoder(labels)
    options = fl.LexiconFreeDecoderOptions(beam_size=args.width, beam_size_token=classes, beam_threshold=1e9,
                                           lm_weight=0.0, sil_score=0.0, log_add=True,
                                           criterion_type=fl.CriterionType.CTC)
    flashlight = fl.LexiconFreeDecoder(options, fl.ZeroLM(), blank, blank, [])
    print(f"{args.num} sequences, T={frames}, {classes} classes, beam width {args.width}; ours with "
          f"{args.threads} torch thread(s), the others single-threaded\n")
    print("| log-probs | ours seq/s | pyctcdecode seq/s | flashlight-text seq/s | ours vs flashlight | "
          "top hypothesis = pyctcdecode's | = flashlight's |\n|---|---|---|---|---|---|---|")
    for kind in ("flat", "peaked"):
        log_probs = peaked_log_probs(args.num, frames, classes, seed=0, peaked=kind == "peaked")
        lengths = torch.full((args.num,), frames)
        ours.decode(log_probs[:8], lengths[:8])  # warm-up
        start = time.perf_counter()
        mine = [p.text for p in ours.decode(log_probs, lengths)]
        ours_rate = args.num / (time.perf_counter() - start)

        arrays = log_probs.numpy()
        start = time.perf_counter()
        theirs = [py.decode(a, beam_width=args.width) for a in arrays]
        py_rate = args.num / (time.perf_counter() - start)

        start = time.perf_counter()
        fl_texts = []
        for a in arrays:
            a = np.ascontiguousarray(a, dtype=np.float32)
            tokens = flashlight.decode(a.ctypes.data, frames, classes)[0].tokens
            fl_texts.append(charset.decode(collapse(list(tokens), blank)))
        fl_rate = args.num / (time.perf_counter() - start)
        same_py = sum(a == b for a, b in zip(mine, theirs)) / args.num
        same_fl = sum(a == b for a, b in zip(mine, fl_texts)) / args.num
        print(f"| {kind} | {ours_rate:.0f} | {py_rate:.0f} | {fl_rate:.0f} | {ours_rate / fl_rate:.1f}x | "
              f"{same_py:.1%} | {same_fl:.1%} |")


def greedy(args) -> None:
    """Best path decoding of many sequences in one batch (T=26, 37 classes)."""
    from ocrframe_ctc import GreedyDecoder

    from ocrframe import Charset

    charset = Charset(CHARSET)
    log_probs = peaked_log_probs(args.num, 26, charset.num_classes, seed=0, peaked=True)
    lengths = torch.full((args.num,), 26)
    decoder = GreedyDecoder(charset)
    decoder.decode(log_probs[:64], lengths[:64])
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        decoder.decode(log_probs, lengths)
        best = min(best, time.perf_counter() - start)
    print(f"greedy: {args.num} sequences (T=26, 37 classes) in {best * 1000:.0f} ms: "
          f"{best / args.num * 1e6:.1f} us per sequence ({torch.get_num_threads()} threads, best of 3)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train-recipe")
    p.add_argument("--batches", type=int, nargs="+", default=[16, 64])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.set_defaults(func=train_recipe)
    p = sub.add_parser("train-step")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--iters", type=int, default=4)
    p.set_defaults(func=train_step)
    p = sub.add_parser("render")
    p.add_argument("--num", type=int, default=300)
    p.set_defaults(func=render)
    p = sub.add_parser("infer")
    p.add_argument("--checkpoint", help="trained weights (default: a randomly initialised paper CRNN)")
    p.add_argument("--val", type=int, default=1000, help="test images for the transcription check (>= 64)")
    p.add_argument("--iters", type=int, default=3, help="batch-64 passes per round (batch 1: 16x as many)")
    p.add_argument("--onnx", action="store_true", help="also the Reader on onnxruntime (the model exported, fp32)")
    p.add_argument("--int8", action="store_true", help="also the Reader's int8 path (onnxruntime, fp32 recheck)")
    p.set_defaults(func=infer)
    p = sub.add_parser("omr-render")
    p.add_argument("--lines", type=int, default=20)
    p.set_defaults(func=omr_render)
    p = sub.add_parser("omr-staff")
    p.add_argument("--num", type=int, default=200)
    p.add_argument("--seed", type=int, default=5)
    p.set_defaults(func=omr_staff)
    p = sub.add_parser("runner")
    p.add_argument("--iters", type=int, default=20, help="iterations per run (3 of them warm-up)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--images", type=int, default=1024, help="rendered words in the LMDB")
    p.set_defaults(func=runner)
    p = sub.add_parser("data")
    p.add_argument("--images", type=int, default=4096, help="100x32 words in the LMDB made for the run")
    p.add_argument("--format", default="png", choices=["png", "jpeg"], help="image format of the LMDB made")
    p.add_argument("--lmdb", help="an LMDB to read instead of making one")
    p.add_argument("--rounds", type=int, default=5, help="passes over the LMDB per figure; the best is kept")
    p.add_argument("--steps", type=int, default=4, help="timed training steps (0: none)")
    p.set_defaults(func=data)
    p = sub.add_parser("distributed")
    p.add_argument("--iters", type=int, default=16)
    p.add_argument("--images", type=int, default=1024)
    p.set_defaults(func=distributed)
    p = sub.add_parser("lexicon")
    p.add_argument("--lexicon", default=HUNSPELL)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--delta", type=int, default=3)
    p.add_argument("--slow", type=int, default=100, help="queries answered by the slow methods (brute force, BK-tree)")
    p.set_defaults(func=lexicon)
    p = sub.add_parser("beam")
    p.add_argument("--num", type=int, default=1000)
    p.add_argument("--width", type=int, default=10)
    p.add_argument("--threads", type=int, default=1, help="torch threads for ours")
    p.set_defaults(func=beam)
    p = sub.add_parser("greedy")
    p.add_argument("--num", type=int, default=10_000)
    p.set_defaults(func=greedy)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
