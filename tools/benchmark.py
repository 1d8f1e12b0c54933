"""Measurements recorded in docs/benchmarks.md, one sub-command each, kept by subject: training,
data and inference in tools/benchmarks/, a plugin's own beside it (plugins/*/benchmarks/).

    python tools/benchmark.py train-step [--batch 64] [--width 100] [--iters 4]   # memory format x precision
    python tools/benchmark.py train-recipe [--batches 16 64]        # batch size x batch norm x alignment probe
    python tools/benchmark.py train-compile [--batch 16]            # the recipe's step: eager vs torch.compile
    python tools/benchmark.py render [--num 300]                    # synthetic word renderer
    python tools/benchmark.py infer [--checkpoint CKPT] [--val 300] [--files 1000]  # inference paths vs eager
    python tools/benchmark.py export [--config CONFIG]                # ONNX: torch's dynamo vs TorchScript exporter
    python tools/benchmark.py omr-render [--lines 20]               # engraved music: lines and snippets
    python tools/benchmark.py omr-staff [--num 200]                 # staff finder on held-out incipits
    python tools/benchmark.py omr-normalize --checkpoint CKPT [--num 200] [--tuning | --seed-offset N]   # with / without StaffNormalize
    python tools/benchmark.py runner [--iters 20] [--rounds 2]       # mmengine Runner vs a bare PyTorch loop
    python tools/benchmark.py data [--images 4096] [--rounds 5]     # LMDB loading: per worker, 1 -> 2 workers
    python tools/benchmark.py sampler [--size 100000000]            # the training order's first batch: lazy vs mmengine
    python tools/benchmark.py distributed [--iters 16]              # 2 gloo processes vs 1 process
    python tools/benchmark.py lexicon [--queries 1000] [--delta 3]  # words within delta: BK-tree, scans, ours
    python tools/benchmark.py beam [--num 1000] [--width 10]        # prefix beam search vs pyctcdecode, flashlight
    python tools/benchmark.py greedy [--num 10000]                  # best path decoding

lexicon and beam compare with libraries used only here: pip install 'ocrframe[bench]', and
pyctcdecode without its numpy<2 pin: pip install --no-deps pyctcdecode pygtrie
"""
import argparse
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SUBJECTS = sorted([*REPO.glob("tools/benchmarks/*.py"), *REPO.glob("plugins/*/benchmarks/*.py")])


def load(path: Path):
    """A subject's module, by file: the benchmarks are scripts, not installed packages."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{path.parent.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for path in SUBJECTS:
        load(path).add_commands(sub)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
