"""Write the embedded synthetic words to an LMDB (to inspect them, or to train from a fixed set).

    python tools/make_synth.py OUT_LMDB [--num 10000] [--seed 0] [--assets train|heldout] [--fonts GROUP ...]
                               [--lexicon-size 50] [--overwrite]

Sample i of a seed is the same image the training dataset renders for index i. With
``--lexicon-size N`` each sample also gets its own lexicon, as IIIT5k's: its word and N - 1 other
words of the split's word list (for `ocrframe test --lexicon sample`).
"""
import argparse
import sys

import numpy as np

from ocrframe.cli import positive_int, run_reporting_user_errors
from ocrframe.data.lmdb_dataset import encoded_samples, write_lmdb
from ocrframe.data.synthetic import SynthWordDataset


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--num", type=positive_int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--assets", choices=["train", "heldout"], default="train")
    parser.add_argument("--fonts", nargs="+", help="only these font design groups (an unknown one lists the split's)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing LMDB at OUT (emptied first)")
    parser.add_argument("--lexicon-size", type=positive_int,
                        help="give each sample a lexicon of this many words: its own and others of the word list")
    args = parser.parse_args(argv)

    # The raw rendering, before any pipeline: labels keep their case, images their colour.
    dataset = SynthWordDataset(charset=dict(symbols="0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
                               length=args.num, seed=args.seed, assets=args.assets, fonts=args.fonts)

    dataset.renderer  # --fonts is checked here (fonts and word list when the dataset is built), before writing
    samples = encoded_samples(dataset, args.num)
    if args.lexicon_size:
        samples = with_lexicons(samples, dataset.renderer.words, args.lexicon_size, args.seed)
    written, skipped = write_lmdb(args.out, samples, total=args.num, overwrite=args.overwrite)
    fonts = f", fonts {', '.join(args.fonts)}" if args.fonts else ""
    print(f"wrote {written} synthetic samples (seed {args.seed}, {args.assets} assets{fonts}) to {args.out}"
          + (f"; skipped {skipped.total()}: {skipped.summary()}" if skipped.total() else ""))
    return 0 if written == args.num else 1


def with_lexicons(samples, words, size: int, seed: int):
    """Each sample with a lexicon of ``size`` words in random order: its label and ``size - 1``
    others drawn from ``words`` (seeded by sample index, so a sample's lexicon never changes)."""
    for index, (key, image, label, _) in enumerate(samples):
        rng = np.random.default_rng([seed, index, size])
        others = set()
        while len(others) < min(size - 1, len(words) - 1):
            word = words[int(rng.integers(len(words)))]
            if word.lower() != label.lower():
                others.add(word.lower())
        lexicon = [label.lower(), *sorted(others)]
        rng.shuffle(lexicon)
        yield key, image, label, lexicon


if __name__ == "__main__":
    sys.exit(run_reporting_user_errors("make_synth.py", main))
