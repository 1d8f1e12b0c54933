"""Same as `ocrframe test`; see `python tools/test.py --help`."""
import sys

from ocrframe.cli import main

if __name__ == "__main__":
    sys.exit(main(["test", *sys.argv[1:]], one_line_errors=True))
