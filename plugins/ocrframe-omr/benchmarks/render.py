"""OMR measurements recorded in docs/benchmarks.md.

    python tools/benchmark.py omr-render [--lines 20]               # engraved music: lines and snippets
    python tools/benchmark.py omr-staff [--num 200]                 # staff finder on held-out incipits
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


def add_commands(sub) -> None:
    """This subject's sub-commands of tools/benchmark.py."""
    p = sub.add_parser("omr-render")
    p.add_argument("--lines", type=int, default=20)
    p.set_defaults(func=omr_render)
    p = sub.add_parser("omr-staff")
    p.add_argument("--num", type=int, default=200)
    p.add_argument("--seed", type=int, default=5)
    p.set_defaults(func=omr_staff)
