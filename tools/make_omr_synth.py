"""Write engraved music snippets (the OMR plugin's synthetic data) to an LMDB, or to a folder of
PNGs with a gt.txt, with a progress bar.

    python tools/make_omr_synth.py OUT [--num 500] [--seed 3] [--style clean|synthesized|camera] [--folder]

Sample i of a seed and style is the image EngravedMusicDataset serves for index i (one engraved
line per sample), so the LMDB is the same split the config's test set renders on the fly; for
example the configs/crnn_omr.py test splits are seeds 2 (clean), 3 (synthesized) and 4 (camera).
Labels are space-separated pitches ("C4 E4 G4"). Evaluate one with
`tools/test.py configs/crnn_omr.py CKPT --data OUT`.
"""
import argparse
import sys
from pathlib import Path

from ocrframe.data.lmdb_dataset import encoded_samples, write_lmdb
from ocrframe_omr.datasets import EngravedMusicDataset
from ocrframe_omr.pitch import TREBLE_RANGE
from ocrframe_omr.render import STYLES


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--num", type=int, default=500)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--style", choices=STYLES, default="synthesized")
    parser.add_argument("--folder", action="store_true", help="write OUT/NNNNNN.png and OUT/gt.txt instead of an LMDB")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing LMDB at OUT (emptied first)")
    args = parser.parse_args(argv)

    # The raw rendering, before any pipeline: colour images at the engraving's resolution.
    dataset = EngravedMusicDataset(charset=dict(symbols=TREBLE_RANGE), length=args.num, seed=args.seed,
                                   style=args.style)

    samples = encoded_samples(dataset, args.num)
    if args.folder:
        written = write_folder(args.out, samples, args.num)
    else:
        written, _ = write_lmdb(args.out, samples, total=args.num, overwrite=args.overwrite)
    print(f"wrote {written} {args.style} snippets (seed {args.seed}) to {args.out}")
    return 0 if written == args.num else 1


def write_folder(out: Path, samples, total: int) -> int:
    from mmengine.utils import ProgressBar

    out.mkdir(parents=True, exist_ok=True)
    progress, lines = ProgressBar(total), []
    for number, (_, data, label, _) in enumerate(samples):
        name = f"{number:06d}.png"
        (out / name).write_bytes(data)
        lines.append(f"{name}\t{label}")
        progress.update()
    (out / "gt.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print()
    return len(lines)


if __name__ == "__main__":
    sys.exit(main())
