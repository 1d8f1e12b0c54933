"""Same as `ocrframe infer`; see `python tools/infer.py --help`."""
import sys

from ocrframe.cli import main

if __name__ == "__main__":
    sys.exit(main(["infer", *sys.argv[1:]], one_line_errors=True))
