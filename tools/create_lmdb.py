"""Build an LMDB in the common OCR layout from a folder with a gt.txt.

    python tools/create_lmdb.py DATA_DIR OUT_LMDB [--gt gt.txt] [--lexicon-file FILE] [--overwrite]

gt.txt lines are ``relative/path<TAB>label`` with an optional third column of space-separated
lexicon words for that sample; --lexicon-file gives one such line per sample instead (same order).
Undecodable images, missing files and empty labels are skipped and summarised. An existing LMDB
at OUT_LMDB is an error unless --overwrite, which empties it first.
"""
import argparse
import sys
from pathlib import Path

from ocrframe.cli import run_reporting_user_errors
from ocrframe.data.lmdb_dataset import write_lmdb
from ocrframe.data.gt_folder import read_gt_lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--gt", default="gt.txt", help="ground-truth file inside DATA_DIR (default gt.txt)")
    parser.add_argument("--lexicon-file", type=Path, help="one line of space-separated words per sample")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing LMDB at OUT (emptied first)")
    args = parser.parse_args(argv)

    entries = read_gt_lines(args.data_dir / args.gt)
    lexicons = None
    if args.lexicon_file:
        lexicons = [line.split() for line in args.lexicon_file.read_text(encoding="utf-8-sig").splitlines()]
        if len(lexicons) != len(entries):
            raise ValueError(f"{args.lexicon_file} has {len(lexicons)} lines but {args.gt} has {len(entries)} samples: "
                             "give one line of words per sample, in the same order")

    def samples():
        for i, entry in enumerate(entries):
            file = args.data_dir / entry.path
            data = file.read_bytes() if file.is_file() else None
            yield entry.path, data, entry.label, lexicons[i] if lexicons else entry.lexicon

    written, skipped = write_lmdb(args.out, samples(), total=len(entries), overwrite=args.overwrite)
    print(f"wrote {written} samples to {args.out}; skipped {skipped.total()}"
          + (f": {skipped.summary()}" if skipped.total() else ""))
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(run_reporting_user_errors("create_lmdb.py", main))
