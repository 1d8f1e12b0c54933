"""Write the embedded synthetic words to an LMDB (to inspect them, or to train from a fixed set).

    python tools/make_synth.py OUT_LMDB [--num 10000] [--seed 0] [--assets train|heldout] [--fonts GROUP ...]

Sample i of a seed is the same image the training dataset renders for index i.
"""
import argparse
import sys

from ocrframe.data.lmdb_dataset import encoded_samples, write_lmdb
from ocrframe.data.synthetic import SynthWordDataset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--num", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--assets", choices=["train", "heldout"], default="train")
    parser.add_argument("--fonts", nargs="+", help="only these font design groups (an unknown one lists the split's)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing LMDB at OUT (emptied first)")
    args = parser.parse_args(argv)

    # The raw rendering, before any pipeline: labels keep their case, images their colour.
    dataset = SynthWordDataset(charset=dict(symbols="0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
                               length=args.num, seed=args.seed, assets=args.assets, fonts=args.fonts)

    try:
        dataset.renderer  # fonts, word list and --fonts are checked here, before anything is written
    except (ValueError, RuntimeError) as exc:
        sys.exit(f"error: {exc}")
    written, skipped = write_lmdb(args.out, encoded_samples(dataset, args.num), total=args.num,
                                   overwrite=args.overwrite)
    fonts = f", fonts {', '.join(args.fonts)}" if args.fonts else ""
    print(f"wrote {written} synthetic samples (seed {args.seed}, {args.assets} assets{fonts}) to {args.out}")
    return 0 if written == args.num else 1


if __name__ == "__main__":
    sys.exit(main())
