"""Measurements recorded in docs/benchmarks.md, each printed side by side in one run.

    python tools/benchmark.py train-step [--batch 64] [--iters 4]   # memory format x precision
    python tools/benchmark.py render [--num 300]                    # synthetic word renderer
    python tools/benchmark.py omr-render [--lines 20]               # engraved music: lines and snippets
"""
import argparse
import itertools
import sys
import time

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


def render(args) -> None:
    from ocrframe.data.synth_text import WordRenderer, discover_assets

    renderer = WordRenderer(discover_assets("train"))
    start = time.perf_counter()
    for i in range(args.num):
        renderer.render(np.random.default_rng([0, i]))
    print(f"render: {args.num / (time.perf_counter() - start):.0f} images/s on one core")


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train-step")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--iters", type=int, default=4)
    p.set_defaults(func=train_step)
    p = sub.add_parser("render")
    p.add_argument("--num", type=int, default=300)
    p.set_defaults(func=render)
    p = sub.add_parser("omr-render")
    p.add_argument("--lines", type=int, default=20)
    p.set_defaults(func=omr_render)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
