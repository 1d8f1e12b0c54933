"""OMR measurements recorded in docs/benchmarks.md.

    python tools/benchmark.py omr-render [--lines 20]               # engraved music: lines and snippets
"""
import time

import numpy as np


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


def add_commands(sub) -> None:
    """This subject's sub-commands of tools/benchmark.py."""
    p = sub.add_parser("omr-render")
    p.add_argument("--lines", type=int, default=20)
    p.set_defaults(func=omr_render)
