"""Same as `ocrframe ablate`; see `python tools/ablate.py --help`."""
import sys

from ocrframe.cli import main

if __name__ == "__main__":
    sys.exit(main(["ablate", *sys.argv[1:]], one_line_errors=True))
