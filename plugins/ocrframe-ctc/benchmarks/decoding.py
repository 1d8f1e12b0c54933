"""CTC decoding measurements recorded in docs/benchmarks.md.

    python tools/benchmark.py lexicon [--queries 1000] [--delta 3]  # words within delta: BK-tree, scans, ours
    python tools/benchmark.py beam [--num 1000] [--width 10]        # prefix beam search vs pyctcdecode, flashlight
    python tools/benchmark.py greedy [--num 10000]                  # best path decoding

lexicon and beam compare with libraries used only here: pip install 'ocrframe[bench]', and
pyctcdecode without its numpy<2 pin: pip install --no-deps pyctcdecode pygtrie
"""
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

CHARSET = "0123456789abcdefghijklmnopqrstuvwxyz"
HUNSPELL = "/usr/share/hunspell/en_US.dic"


def need(module: str, package: str):
    """Import a benchmark-only library, or stop with what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        sys.exit(f"this benchmark needs {package}: pip install 'ocrframe[bench]' "
                 "(pyctcdecode: pip install --no-deps pyctcdecode pygtrie)")


def edited_queries(words: list[str], count: int, max_edits: int, seed: int = 0) -> list[str]:
    """Lexicon words with 0..max_edits random insertions, deletions or substitutions each."""
    rng = np.random.default_rng(seed)
    queries = []
    for _ in range(count):
        word = list(words[rng.integers(len(words))])
        for _ in range(rng.integers(max_edits + 1)):
            kind, at = rng.integers(3), int(rng.integers(len(word) + 1))
            if kind == 0 or not word:
                word.insert(at, CHARSET[rng.integers(len(CHARSET))])
            elif kind == 1:
                del word[min(at, len(word) - 1)]
            else:
                word[min(at, len(word) - 1)] = CHARSET[rng.integers(len(CHARSET))]
        queries.append("".join(word))
    return queries


def lexicon(args) -> None:
    """Words within delta of each query on the Hunspell lexicon: the LexiconDecoder's search (one
    batched rapidfuzz cdist), the BK-tree, a brute-force editdistance scan and rapidfuzz one query
    at a time, side by side; candidates must agree. One thread except the last row."""
    import editdistance
    from ocrframe_ctc.lexicon import BKTree, LevenshteinScan, Lexicon

    from ocrframe import Charset

    rapidfuzz = need("rapidfuzz", "rapidfuzz")
    from rapidfuzz.distance import Levenshtein

    torch.set_num_threads(1)
    if not Path(args.lexicon).is_file():
        sys.exit(f"{args.lexicon} does not exist: apt-get install hunspell-en-us (setup/debian-packages.txt)")
    start = time.perf_counter()
    words = Lexicon.load(args.lexicon, Charset(CHARSET, case="lower"), warn=False).words
    print(f"{args.lexicon}: {len(words)} distinct words in the 36-symbol charset (loaded in "
          f"{time.perf_counter() - start:.1f} s); {args.queries} queries with 0-3 random edits, delta {args.delta}\n")
    queries = edited_queries(words, args.queries, 3)
    sample = queries[: args.slow]  # the slow methods answer these only

    scan = LevenshteinScan(words, workers=1)
    start = time.perf_counter()
    ours = scan.search_many(queries, args.delta)
    ours_ms = (time.perf_counter() - start) * 1000 / len(queries)
    scan.workers = -1  # the LexiconDecoder default: all cores
    start = time.perf_counter()
    ours_all_cores = scan.search_many(queries, args.delta)
    all_cores_ms = (time.perf_counter() - start) * 1000 / len(queries)

    start = time.perf_counter()
    extract = [sorted(i for _, _, i in rapidfuzz.process.extract(q, words, scorer=Levenshtein.distance,
                                                                   score_cutoff=args.delta, limit=None))
               for q in sample]
    extract_ms = (time.perf_counter() - start) * 1000 / len(sample)

    start = time.perf_counter()
    brute = [[i for i, w in enumerate(words) if editdistance.eval(q, w) <= args.delta] for q in sample]
    brute_ms = (time.perf_counter() - start) * 1000 / len(sample)

    start = time.perf_counter()
    tree = BKTree(words)
    tree_build = time.perf_counter() - start
    start, visited, tree_found = time.perf_counter(), 0, []
    for q in sample:
        tree_found.append(tree.search(q, args.delta))
        visited += tree.visited
    tree_ms = (time.perf_counter() - start) * 1000 / len(sample)

    assert tree_found == brute, "BK-tree candidates differ from the brute-force scan"
    assert extract == brute, "rapidfuzz extract candidates differ from the brute-force scan"
    assert ours[: len(sample)] == brute, "LevenshteinScan candidates differ from the brute-force scan"
    assert ours == ours_all_cores, "LevenshteinScan candidates differ between one thread and all cores"
    mean = sum(map(len, ours)) / len(ours)
    print(f"candidates identical to the brute-force scan on the first {len(sample)} queries; "
          f"{mean:.1f} candidates per query on average\n")
    print("| method | ms per query | queries/s | vs brute force | notes |\n|---|---|---|---|---|")
    rows = [("brute-force editdistance scan", brute_ms, f"{len(sample)} queries"),
            ("BK-tree (the paper's), Python + editdistance", tree_ms,
             f"visits {visited / len(sample) / len(words):.0%} of the lexicon; built in {tree_build:.1f} s"),
            ("rapidfuzz process.extract, one query at a time", extract_ms, f"{len(sample)} queries"),
            ("LevenshteinScan: rapidfuzz process.cdist, whole lexicon, batched, one thread", ours_ms,
             f"{len(queries)} queries"),
            (f"LevenshteinScan on all {os.cpu_count()} cores (LexiconDecoder default)", all_cores_ms,
             f"{len(queries)} queries")]
    for name, ms, note in rows:
        print(f"| {name} | {ms:.3f} | {1000 / ms:.0f} | {brute_ms / ms:.1f}x | {note} |")
    print(f"\ngoal <= 1 ms per query on this machine: {'met' if all_cores_ms <= 1 else 'NOT met'} "
          f"({all_cores_ms:.3f} ms on {os.cpu_count()} cores, {ours_ms:.3f} ms on one)")


def peaked_log_probs(num: int, frames: int, classes: int, seed: int, peaked: bool) -> torch.Tensor:
    """Flat: log-softmax of standard normal logits. Peaked (trained-model-like): one class per
    frame (blank half the time) gets +8 on top."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(num, frames, classes, generator=generator)
    if peaked:
        winner = torch.randint(1, classes, (num, frames), generator=generator)
        winner[torch.rand(num, frames, generator=generator) < 0.5] = 0
        logits.scatter_add_(2, winner[..., None], torch.full((num, frames, 1), 8.0))
    return logits.log_softmax(-1)


def collapse(path, blank: int) -> list[int]:
    return [c for i, c in enumerate(path) if c != blank and (i == 0 or c != path[i - 1])]


def beam(args) -> None:
    """Prefix beam search, width 10, T=26, 37 classes: ours (batched tensor ops) against
    pyctcdecode (no LM) and flashlight-text's C++ LexiconFreeDecoder (ZeroLM), one thread each."""
    from ocrframe_ctc import BeamSearchDecoder

    from ocrframe import Charset

    pyctcdecode = need("pyctcdecode", "pyctcdecode")
    fl = need("flashlight.lib.text.decoder", "flashlight-text")
    import logging

    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    charset = Charset(CHARSET, blank="first")
    blank, classes, frames = charset.blank, charset.num_classes, 26
    ours = BeamSearchDecoder(charset, beam_width=args.width)
    labels = [""] + list(CHARSET)  # pyctcdecode: "" is the blank
    py = pyctcdecode.build_ctcdecoder(labels)
    options = fl.LexiconFreeDecoderOptions(beam_size=args.width, beam_size_token=classes, beam_threshold=1e9,
                                           lm_weight=0.0, sil_score=0.0, log_add=True,
                                           criterion_type=fl.CriterionType.CTC)
    flashlight = fl.LexiconFreeDecoder(options, fl.ZeroLM(), blank, blank, [])
    print(f"{args.num} sequences, T={frames}, {classes} classes, beam width {args.width}; ours with "
          f"{args.threads} torch thread(s), the others single-threaded\n")
    print("| log-probs | ours seq/s | pyctcdecode seq/s | flashlight-text seq/s | ours vs flashlight | "
          "top hypothesis = pyctcdecode's | = flashlight's |\n|---|---|---|---|---|---|---|")
    for kind in ("flat", "peaked"):
        log_probs = peaked_log_probs(args.num, frames, classes, seed=0, peaked=kind == "peaked")
        lengths = torch.full((args.num,), frames)
        ours.decode(log_probs[:8], lengths[:8])  # warm-up
        start = time.perf_counter()
        mine = [p.text for p in ours.decode(log_probs, lengths)]
        ours_rate = args.num / (time.perf_counter() - start)

        arrays = log_probs.numpy()
        start = time.perf_counter()
        theirs = [py.decode(a, beam_width=args.width) for a in arrays]
        py_rate = args.num / (time.perf_counter() - start)

        start = time.perf_counter()
        fl_texts = []
        for a in arrays:
            a = np.ascontiguousarray(a, dtype=np.float32)
            tokens = flashlight.decode(a.ctypes.data, frames, classes)[0].tokens
            fl_texts.append(charset.decode(collapse(list(tokens), blank)))
        fl_rate = args.num / (time.perf_counter() - start)
        same_py = sum(a == b for a, b in zip(mine, theirs)) / args.num
        same_fl = sum(a == b for a, b in zip(mine, fl_texts)) / args.num
        print(f"| {kind} | {ours_rate:.0f} | {py_rate:.0f} | {fl_rate:.0f} | {ours_rate / fl_rate:.1f}x | "
              f"{same_py:.1%} | {same_fl:.1%} |")


def greedy(args) -> None:
    """Best path decoding of many sequences in one batch (T=26, 37 classes)."""
    from ocrframe_ctc import GreedyDecoder

    from ocrframe import Charset

    charset = Charset(CHARSET)
    log_probs = peaked_log_probs(args.num, 26, charset.num_classes, seed=0, peaked=True)
    lengths = torch.full((args.num,), 26)
    decoder = GreedyDecoder(charset)
    decoder.decode(log_probs[:64], lengths[:64])
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        decoder.decode(log_probs, lengths)
        best = min(best, time.perf_counter() - start)
    print(f"greedy: {args.num} sequences (T=26, 37 classes) in {best * 1000:.0f} ms: "
          f"{best / args.num * 1e6:.1f} us per sequence ({torch.get_num_threads()} threads, best of 3)")


def add_commands(sub) -> None:
    """This subject's sub-commands of tools/benchmark.py."""
    p = sub.add_parser("lexicon")
    p.add_argument("--lexicon", default=HUNSPELL)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--delta", type=int, default=3)
    p.add_argument("--slow", type=int, default=100, help="queries answered by the slow methods (brute force, BK-tree)")
    p.set_defaults(func=lexicon)
    p = sub.add_parser("beam")
    p.add_argument("--num", type=int, default=1000)
    p.add_argument("--width", type=int, default=10)
    p.add_argument("--threads", type=int, default=1, help="torch threads for ours")
    p.set_defaults(func=beam)
    p = sub.add_parser("greedy")
    p.add_argument("--num", type=int, default=10_000)
    p.set_defaults(func=greedy)
