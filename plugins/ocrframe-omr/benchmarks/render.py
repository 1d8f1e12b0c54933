"""OMR measurements recorded in docs/benchmarks.md.

    python tools/benchmark.py omr-render [--lines 20]               # engraved music: lines and snippets
    python tools/benchmark.py omr-staff [--num 200]                 # staff finder on held-out incipits
    python tools/benchmark.py omr-normalize --checkpoint CKPT [--num 200] [--tuning | --seed-offset N] [--per-image FILE]
                                                                    # reading with / without StaffNormalize
"""
import contextlib
import json
import time

import numpy as np


def omr_render(args) -> None:
    """Engraving a line (verovio + resvg) against cutting and augmenting a snippet from it, per style."""
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


NORMALIZE_SPLITS = dict(synthesized=dict(seed=3, style="synthesized"), camera=dict(seed=4, style="camera"),
                        heldout_clean=dict(seed=5, style="clean", assets="heldout"),
                        heldout_camera=dict(seed=6, style="camera", assets="heldout"))
# The finder's rules are chosen on splits of the test splits' seeds + 10, then measured on the test splits;
# a rule that test images suggested is measured on further seeds (`--seed-offset`).
TUNING_SEED_OFFSET = 10


def omr_normalize(args) -> None:
    """A trained model's readings of the test splits (their first ``--num`` images; ``--tuning``:
    splits of other seeds, to choose rules on; ``--seed-offset N``: splits of the test seeds + N)
    with the config's test pipeline as it is, with StaffNormalize keeping 3 staff spaces at the
    sides, trusting the found comb only (``rival_coverage=None``), and without StaffNormalize: what
    each does to the reading. ``--per-image FILE`` also writes one JSON line per image: its split,
    seed, index and truth, the staff the finder sees in it (geometry, height and the margins above
    and below at the staff's middle column, in found spaces), and each variant's reading and edit
    distance, so that a rule can be tried on the images it would change before it is written."""
    from ocrframe import SLOTS, Reader
    from ocrframe_omr.metrics import sequence_metrics

    reader = Reader.from_checkpoint(args.checkpoint, precision="fp32", runtime="torch")

    def pipeline(**normalize):
        steps = [dict(step, **normalize) if step["type"] == "StaffNormalize" else step for step in reader.pipeline_config]
        return [s for s in steps if not s.get("off")]

    variants = {"as configured": pipeline(), "3 spaces at the sides": pipeline(spaces_side=3.0),
                "the found comb only": pipeline(rival_coverage=None), "no StaffNormalize": pipeline(off=True)}
    offset = args.seed_offset
    splits = {0: "test split", TUNING_SEED_OFFSET: "tuning split"}.get(offset, f"split of the test seeds + {offset}")
    print(f"{args.checkpoint}: first {args.num} images of each {splits} "
          f"(seeds {', '.join(str(s['seed'] + offset) for s in NORMALIZE_SPLITS.values())}); "
          "fragment accuracy / mean edit distance")
    print(f"| split | {' | '.join(variants)} |\n|---|{'---|' * len(variants)}")
    with open(args.per_image, "w") if args.per_image else contextlib.nullcontext() as per_image:
        for name, split in NORMALIZE_SPLITS.items():
            seed = split["seed"] + offset
            dataset = SLOTS.dataset.build(dict(type="EngravedMusicDataset", charset=reader.charset, length=args.num,
                                          **dict(split, seed=seed)))
            samples = [dataset.load(i) for i in range(args.num)]
            cells, texts = [], {}
            for variant, steps in variants.items():
                readings = Reader(reader.model, steps, precision="fp32", runtime="torch").read(
                    [s["image"] for s in samples])
                texts[variant] = [p.text for p in readings]
                m = sequence_metrics([(p.text, s["text"]) for p, s in zip(readings, samples)])
                cells.append(f"{m['fragment_acc']:.1%} / {m['mean_edit_distance']:.2f}")
            print(f"| {name} | {' | '.join(cells)} |", flush=True)
            for index, sample in enumerate(samples if per_image else ()):
                readings = {variant: dict(text=t[index], edits=int(
                    sequence_metrics([(t[index], sample["text"])])["mean_edit_distance"])) for variant, t in texts.items()}
                per_image.write(json.dumps(dict(split=name, seed=seed, index=index, truth=sample["text"],
                                                staff=staff_seen(sample["image"]), readings=readings)) + "\n")
    if args.per_image:
        print(f"wrote {args.per_image}: one line per image")


def staff_seen(image) -> dict | None:
    """What the finder sees in ``image``: its geometry, the image's height and the margins above
    and below the staff at its middle column, in found staff spaces (StaffNormalize's rules read
    these)."""
    from ocrframe_omr.staff import find_staff

    gray = np.asarray(image.convert("L"))
    staff = find_staff(gray)
    if staff is None:
        return None
    above, below = staff.margins(gray.shape[0], (staff.left + staff.right) / 2)
    return dict(staff.as_dict(), height_spaces=round(gray.shape[0] / staff.space, 2),
                above_spaces=round(above / staff.space, 2), below_spaces=round(below / staff.space, 2))


def add_commands(sub) -> None:
    """This subject's sub-commands of tools/benchmark.py."""
    p = sub.add_parser("omr-render")
    p.add_argument("--lines", type=int, default=20)
    p.set_defaults(func=omr_render)
    p = sub.add_parser("omr-staff")
    p.add_argument("--num", type=int, default=200)
    p.add_argument("--seed", type=int, default=5)
    p.set_defaults(func=omr_staff)
    p = sub.add_parser("omr-normalize")
    p.add_argument("--checkpoint", required=True, help="a trained OMR checkpoint or released model name")
    p.add_argument("--num", type=int, default=200)
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--tuning", dest="seed_offset", action="store_const", const=TUNING_SEED_OFFSET, default=0,
                       help=f"splits of other seeds than the test splits' (--seed-offset {TUNING_SEED_OFFSET})")
    seeds.add_argument("--seed-offset", type=int, default=0, metavar="N",
                       help="splits of the test seeds (3-6) + N (--tuning: + 10); choose N so that no seed is one "
                            "the model trained on (crnn-omr: 0, 7, 11) or validated on (1)")
    p.add_argument("--per-image", metavar="FILE", help="also write each image's staff and readings as JSON lines")
    p.set_defaults(func=omr_normalize)
