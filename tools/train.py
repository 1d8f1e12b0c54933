"""Same as `ocrframe train`; see `python tools/train.py --help`."""
import sys

from ocrframe.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]], one_line_errors=True))
