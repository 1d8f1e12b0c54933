"""The paper's Table 2 in one run: word accuracy per dataset (rows) and lexicon (columns).

Each dataset goes through the network once; its log-probabilities are then transcribed once per
lexicon column:

    none     the model's own decoder (lexicon-free)
    sample   each image's own lexicon (LMDB ``lexicon-%09d``, third gt.txt column), every word
             scored with CTC (the IIIT5k 50 / 1k and SVT 50 columns)
    full     the union of the dataset's per-image lexicons, one lexicon for every image (IC03 full)
    FILE     a word file for every image (e.g. the 50k-word Hunspell dictionary) or, for a
             ``.jsonl`` file of {"key": ..., "lexicon": [...]} lines, a lexicon per image key

``full`` and word files use the paper's search: the words within edit distance ``delta`` of the
lexicon-free reading, the most probable by CTC (``decoders.lexicon_decoder``: the CTC plugin's
``LexiconDecoder``, whose ``mode`` and ``delta`` the columns set). Word accuracy follows the
benchmark protocol (case-insensitive alphanumerics, ocrframe.metrics); time per sample is the
network's share plus the decoding of that column.

``compare_predictions`` (``ocrframe compare``) pairs two models' predictions files image by image.
"""
from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ocrframe.metrics import score_pairs
from ocrframe.model import Prediction


@dataclass
class Outputs:
    """The network's outputs over one dataset, in batches. Rows come in the batches' order (by width),
    not the dataset's: match them to samples by ``keys``."""

    name: str
    batches: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (log_probs, frame lengths)
    keys: list[str] = field(default_factory=list)
    truths: list[str] = field(default_factory=list)
    lexicons: list[list[str] | None] = field(default_factory=list)
    unreadable: list[str | None] = field(default_factory=list)  # why an image could not be read, per image
    seconds: float = 0.0
    skipped: str = ""


@dataclass
class Cell:
    word_acc: float
    one_minus_ned: float
    ms_per_sample: float
    note: str = ""


LOAD_CHUNK = 1024  # samples loaded, then sorted by width, at a time when only loading tells a sample's width


def width_sorted_batches(dataset, batch_size: int):
    """Batches of loaded samples, similar widths together (little padding). With the dataset's
    ``aspect_ratio(index)`` the whole dataset is sorted before loading; without one (e.g. generated
    data, whose width is known once rendered, a ConcatDataset or a Subset), each chunk of
    LOAD_CHUNK samples after loading."""
    from ocrframe.data.batching import width_buckets
    from ocrframe.data.sampler import aspect_ratio_of

    ratio = aspect_ratio_of(dataset, quiet=True)
    if ratio is not None:
        for indices in width_buckets([ratio(i) for i in range(len(dataset))], batch_size, width_step=None):
            yield [dataset[i] for i in indices]
        return
    for start in range(0, len(dataset), LOAD_CHUNK):
        samples = [dataset[i] for i in range(start, min(start + LOAD_CHUNK, len(dataset)))]
        for indices in width_buckets([s["width"] for s in samples], batch_size, width_step=None):
            yield [samples[i] for i in indices]


@torch.inference_mode()
def run_network(model, dataset, name: str, batch_size: int = 64) -> Outputs:
    """Log-probabilities of every sample, batched by similar width (``width_sorted_batches``). An
    unreadable image is kept, not replaced by another sample (the dataset marks it, see
    ``mark_for_evaluation``), and counts as an error."""
    from ocrframe.data.transforms import pad_collate

    outputs = Outputs(name)
    device = next(model.parameters()).device
    for samples in width_sorted_batches(dataset, batch_size):
        began = time.perf_counter()
        batch = pad_collate(samples)
        widths = batch["data_samples"]["widths"]  # the encoder leaves each image's padding out
        log_probs = model(batch["inputs"].to(device), dict(widths=widths.to(device))).float().cpu()
        lengths = model.frame_lengths(batch["data_samples"]["widths"], at_most=log_probs.shape[1])
        outputs.seconds += time.perf_counter() - began
        outputs.batches.append((log_probs, lengths))
        outputs.keys += [s["key"] for s in samples]
        outputs.truths += [s["text"] for s in samples]
        outputs.lexicons += [s.get("lexicon") for s in samples]
        outputs.unreadable += [s.get("unreadable") for s in samples]
    skipped = getattr(dataset, "skipped", None)
    if skipped is not None and skipped.total():
        outputs.skipped = skipped.summary()
    return outputs


def column_name(mode: str) -> str:
    return mode if mode in ("none", "sample", "full") else Path(mode).name


def per_image_lexicons(outputs: Outputs, mode: str) -> list[list[str]]:
    """Each image's lexicon for the ``sample`` column or a ``.jsonl`` file; an error naming the
    images that have none."""
    if mode == "sample":
        lexicons = outputs.lexicons
        source = "no lexicon of its own (LMDB lexicon-%09d key, or a third gt.txt column)"
    else:
        by_key = {}
        with open(mode, encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    record = json.loads(line)
                    if "key" not in record or "lexicon" not in record:
                        raise ValueError(f"{mode}:{number}: expected {{\"key\": ..., \"lexicon\": [...]}}")
                    by_key[record["key"]] = record["lexicon"]
        lexicons = [by_key.get(key) for key in outputs.keys]
        source = f"no line in {mode}"
    missing = [key for key, lexicon in zip(outputs.keys, lexicons) if not lexicon]
    if missing:
        raise ValueError(f"{outputs.name}: {len(missing)} of {len(lexicons)} images have {source}, "
                         f"e.g. {missing[:3]}; leave the column out for this dataset")
    return lexicons


def decoding_chunks(batches, size: int = 1024):
    """The network's batches joined into chunks of about ``size`` samples, frames padded to the
    longest (decoders ignore frames past each sample's length): the lexicon search answers a
    large batch of queries much faster per query than a small one."""
    chunk: list[tuple[torch.Tensor, torch.Tensor]] = []
    for batch in batches + [None]:
        if chunk and (batch is None or sum(len(lp) for lp, _ in chunk) + len(batch[0]) > size):
            frames = max(lp.shape[1] for lp, _ in chunk)
            padded = [torch.nn.functional.pad(lp, (0, 0, 0, frames - lp.shape[1])) for lp, _ in chunk]
            yield torch.cat(padded), torch.cat([lengths for _, lengths in chunk])
            chunk = []
        if batch is not None:
            chunk.append(batch)


def decode_column(model, outputs: Outputs, mode: str, delta: int, file_decoders: dict):
    """(predictions, decoding seconds, note) of one lexicon column on one dataset."""
    from ocrframe.decoders import build_decoder, lexicon_decoder
    from ocrframe.model import accepted_arguments
    from ocrframe.registry import DECODERS

    def build(lexicon=None, **tuning):
        # `delta` and `mode` tune the CTC plugin's LexiconDecoder: another lexicon decoder gets those it takes.
        kind = lexicon_decoder()
        cfg = dict(type=kind, **accepted_arguments(dict(type=kind), DECODERS, tuning))
        return build_decoder(cfg if lexicon is None else dict(cfg, lexicon=lexicon), model.charset)

    lexicons = None
    if mode == "none":
        decoder = model.decoder
    elif mode == "sample" or mode.endswith(".jsonl"):
        lexicons = per_image_lexicons(outputs, mode)
        decoder = build(mode="exhaustive")  # a few dozen words per image: no index pays for itself
    elif mode == "full":
        union = list(dict.fromkeys(w for words in per_image_lexicons(outputs, "sample") for w in words))
        decoder = build(lexicon=union, delta=delta)
    else:  # one word file for every dataset: indexed once
        if mode not in file_decoders:
            file_decoders[mode] = build(lexicon=mode, delta=delta)
        decoder = file_decoders[mode]
    predictions, start, began = [], 0, time.perf_counter()
    for log_probs, lengths in decoding_chunks(outputs.batches):
        kwargs = {} if lexicons is None else dict(lexicons=lexicons[start:start + len(log_probs)])
        predictions += decoder.decode(log_probs, lengths, **kwargs)
        start += len(log_probs)
    seconds = time.perf_counter() - began
    report = getattr(decoder, "charset_report", None)
    note = f"lexicon words: {report.summary()}" if report is not None and report.total() else ""
    return predictions, seconds, note


def reads_tokens(model) -> bool:
    """Whether the model's labels are tokens joined by a separator (e.g. OMR pitches "C4 E4"):
    then an image is right when its reading equals the truth, token for token, not under the text
    benchmark's form (which would drop the separators and any token's non-alphanumerics)."""
    return getattr(getattr(model, "charset", None), "separator", "") != ""


def reading_is_right(model):
    """(prediction, truth) -> bool: token for token for a model that ``reads_tokens``, else under the
    text benchmark's form (case-insensitive alphanumerics)."""
    from ocrframe.metrics import benchmark_form

    if reads_tokens(model):
        return lambda prediction, truth: prediction == truth
    return lambda prediction, truth: benchmark_form(prediction) == benchmark_form(truth)


PREDICTION_COLUMNS = ["dataset", "lexicon", "key", "truth", "prediction", "score", "correct"]


def evaluate(model, datasets: dict[str, object], modes: list[str], delta: int = 3, batch_size: int = 64,
             predictions_file: str | Path | None = None) -> dict[str, dict[str, Cell]]:
    """Table 2: {dataset name: {column name: Cell}}; the predictions go to ``predictions_file``
    (TSV: dataset, lexicon, key, truth, prediction, score, correct). Accuracy is word accuracy under
    the benchmark protocol, or exact sequence accuracy for a model that ``reads_tokens``."""
    tokens = reads_tokens(model)
    same = reading_is_right(model)
    model.eval()
    table: dict[str, dict[str, Cell]] = {}
    file_decoders: dict = {}
    writer = handle = None
    if predictions_file is not None:
        Path(predictions_file).parent.mkdir(parents=True, exist_ok=True)
        handle = open(predictions_file, "w", encoding="utf-8", newline="")
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(PREDICTION_COLUMNS)
    try:
        for name, dataset in datasets.items():
            outputs = run_network(model, dataset, name, batch_size)
            row = table.setdefault(name, {})
            for mode in modes:
                predictions, seconds, note = decode_column(model, outputs, mode, delta, file_decoders)
                predictions = [Prediction.unread() if bad else p
                               for p, bad in zip(predictions, outputs.unreadable)]
                pairs = [(p.text, truth) for p, truth in zip(predictions, outputs.truths)]
                metrics = score_pairs(pairs, outputs.unreadable)
                count = max(len(pairs), 1)
                accuracy = metrics["word_acc_exact" if tokens else "word_acc"]
                row[column_name(mode)] = Cell(accuracy, metrics["one_minus_ned"],
                                              1000 * (outputs.seconds + seconds) / count, note)
                if writer is not None:
                    for key, truth, p, bad in zip(outputs.keys, outputs.truths, predictions, outputs.unreadable):
                        writer.writerow([name, column_name(mode), key, truth, p.text, f"{p.score:.4f}",
                                         int(not bad and same(p.text, truth))])
            unreadable = [key for key, bad in zip(outputs.keys, outputs.unreadable) if bad]
            if unreadable:
                row["_unreadable"] = Cell(0, 0, 0, f"{len(unreadable)} of {len(outputs.keys)} images unreadable, "
                                                   f"counted as errors (e.g. {', '.join(unreadable[:3])})")
            if outputs.skipped:
                row["_skipped"] = Cell(0, 0, 0, f"left out: {outputs.skipped}")
    finally:
        if handle is not None:
            handle.close()
    return table


WORD_HEADER = "word accuracy % (case-insensitive alphanumerics) / 1-NED / ms per sample"
SEQUENCE_HEADER = ("sequence accuracy % (every token right: OMR's fragment accuracy) / 1-NED over characters / "
                   "ms per sample")


def format_table(table: dict[str, dict[str, Cell]], modes: list[str], header: str = WORD_HEADER) -> str:
    """A Markdown table in the shape of the paper's Table 2 under ``header`` (what the accuracy
    is: ``WORD_HEADER`` or, for a model that reads tokens, ``SEQUENCE_HEADER``), then the notes."""
    columns = [column_name(m) for m in modes]
    lines = [header,
             "| dataset | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    notes = []
    for name, row in table.items():
        cells = [f"{row[c].word_acc * 100:.1f} / {row[c].one_minus_ned:.3f} / {row[c].ms_per_sample:.2f}"
                 for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        notes += [f"{name}, {c}: {cell.note}" if not c.startswith("_") else f"{name}: {cell.note}"
                  for c, cell in row.items() if cell.note]
    return "\n".join(lines + notes)


def read_predictions(path: str | Path) -> dict[tuple[str, str, str], tuple[str, bool]]:
    """{(dataset, lexicon, key): (truth, read right)} of a predictions TSV written by :func:`evaluate`."""
    not_predictions = f"{path}: not a predictions TSV of `ocrframe test --predictions`"
    table = {}
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = csv.reader(handle, delimiter="\t")
            header = next(rows, [])
            if header != PREDICTION_COLUMNS:
                raise ValueError(f"{not_predictions} (columns {', '.join(PREDICTION_COLUMNS)}; found "
                                 f"{', '.join(header) or 'none'})")
            for line, row in enumerate(rows, start=2):
                if len(row) != len(PREDICTION_COLUMNS) or row[6] not in ("0", "1"):
                    raise ValueError(f"{path}, line {line}: not a row of {len(PREDICTION_COLUMNS)} columns ending "
                                     "in 0 or 1 (a file cut short or edited?); write it again with "
                                     "`ocrframe test --predictions`")
                key = (row[0], row[1], row[2])
                if key in table:
                    raise ValueError(f"{path}, line {line}: image {row[2]!r} of {row[0]!r}, lexicon {row[1]!r}, "
                                     "a second time (files joined?): one test per predictions file")
                table[key] = (row[3], row[6] == "1")
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{not_predictions} ({exc})") from None
    return table


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test (McNemar's on the disagreements): the chance that two equally good
    models would split ``wins + losses`` disagreements at least this unevenly."""
    n, k = wins + losses, min(wins, losses)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0


def compare_predictions(path_a: str | Path, path_b: str | Path) -> str:
    """Two models' readings of the same images, paired image by image: per dataset and lexicon,
    how many each reads right, how many only one of them does, and the sign test on those. A
    difference of a few images in a thousand is below what one test set's accuracy can resolve;
    the test on the disagreements says whether it is more than chance."""
    preds_a, preds_b = read_predictions(path_a), read_predictions(path_b)
    if preds_a.keys() != preds_b.keys():
        only_a, only_b = sorted(preds_a.keys() - preds_b.keys()), sorted(preds_b.keys() - preds_a.keys())
        examples = [f"{keys[0][2]!r} only in {path}" for keys, path in ((only_a, path_a), (only_b, path_b)) if keys]
        raise ValueError(f"{path_a} and {path_b} hold different images ({len(only_a)} only in the first, "
                         f"{len(only_b)} only in the second; e.g. {', '.join(examples)}): compare the predictions "
                         "of one test set, read with the same --lexicon columns")
    mismatched = [k for k in preds_a if preds_a[k][0] != preds_b[k][0]]
    if mismatched:
        key = mismatched[0]
        raise ValueError(f"{path_a} and {path_b} give image {key[2]!r} different truths ({preds_a[key][0]!r}, "
                         f"{preds_b[key][0]!r}): they were not made from the same test set")
    lines = [f"A: {path_a}", f"B: {path_b}", "",
             "| dataset | lexicon | images | A right | B right | only A | only B | sign test p |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for dataset, lexicon in dict.fromkeys(k[:2] for k in preds_a):
        keys = [k for k in preds_a if k[:2] == (dataset, lexicon)]
        right_a = sum(preds_a[k][1] for k in keys)
        right_b = sum(preds_b[k][1] for k in keys)
        only_a = sum(preds_a[k][1] and not preds_b[k][1] for k in keys)
        only_b = sum(preds_b[k][1] and not preds_a[k][1] for k in keys)
        p = sign_test(only_a, only_b)
        lines.append(f"| {dataset} | {lexicon} | {len(keys)} | {right_a} ({right_a / len(keys):.1%}) | "
                     f"{right_b} ({right_b / len(keys):.1%}) | {only_a} | {only_b} | "
                     f"{f'{p:.2f}' if p >= 0.01 else f'{p:.1e}'} |")
    return "\n".join(lines)
