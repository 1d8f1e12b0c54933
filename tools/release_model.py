"""Release a trained checkpoint as a named model: NAME.safetensors (weights without pickle, the
config as data) and NAME.md (model card) in OUT; see ocrframe/pretrained.py.

    .venv/bin/python tools/release_model.py work_dirs/cpu_long/best_word_acc_iter_N.pth --name crnn-en \
        --summary "CRNN (paper), 36 lowercase alphanumerics" --notes card_text.md --out ocrframe/models

The training-only alignment probe is left out (predictions never use it). The weights are stored
in ``--dtype``: fp16 by default, half the size of fp32; on crnn-en checkpoints 0-1 of 1000 test
transcriptions changed with fp16 and 8 with bf16. The tool reads the config's test set with the
checkpoint and with the released file and puts both accuracies, and how many transcriptions
differ, in the card's metrics, so the card states what the smaller file costs. Both files are
written under temporary names and put in place only when the card is complete: a failed release
leaves the model already in OUT as it was.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from pathlib import Path

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def transcriptions(model, datasets: dict, out: Path) -> tuple[dict, list[str]]:
    """({split: (accuracy, 1 - NED)}, every transcription) on ``datasets``, {split name: dataset}."""
    from ocrframe.evaluation import evaluate

    table = evaluate(model, datasets, ["none"], predictions_file=out)
    cells = {name: next(iter(row.values())) for name, row in table.items()}  # one column: no lexicon
    scores = {name: (cell.word_acc, cell.one_minus_ned) for name, cell in cells.items()}
    with open(out, encoding="utf-8", newline="") as f:
        texts = [row["prediction"] for row in csv.DictReader(f, delimiter="\t")]
    return scores, texts


def test_sets(cfg, limit: int | None = None) -> dict:
    """The config's test set, one entry per split where it is a ConcatDataset of the config's
    ``test_splits`` (the OMR config's clean / synthesized / camera / held-out splits); with
    ``limit``, each split's first ``limit`` images."""
    from torch.utils.data import Subset

    from ocrframe.data.build import build_dataset

    dataset = cfg.test_dataloader.dataset
    if dataset.get("type") == "ConcatDataset":
        parts = dataset.datasets
        names = list(cfg.get("test_splits") or [f"part {i + 1}" for i in range(len(parts))])
        if len(names) != len(parts):
            raise ValueError(f"the config names {len(names)} test_splits for the {len(parts)} parts of its test set: "
                             "give one name per part")
        splits = {name: build_dataset(part) for name, part in zip(names, parts)}
    else:
        splits = {"test": build_dataset(dataset)}
    if limit:
        splits = {name: Subset(split, range(min(limit, len(split)))) for name, split in splits.items()}
    return splits


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--name", required=True, help="the model's name, e.g. crnn-en")
    parser.add_argument("--summary", required=True, help="one line: what the model reads")
    parser.add_argument("--out", default="ocrframe/models", help="directory for NAME.safetensors and NAME.md")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp16")
    parser.add_argument("--notes", help="Markdown for the card's text (training command, data, host, limits, licence)")
    parser.add_argument("--limit", type=int, help="measure on the first LIMIT images of each test split (a quick check; "
                        "the card then says so in its 'test images')")
    parser.add_argument("--accuracy-name", default="word accuracy",
                        help="what exact-match accuracy is called for this model, e.g. 'fragment accuracy' (OMR)")
    args = parser.parse_args(argv)

    from ocrframe.checkpoint import build_trained_model, load_checkpoint, store_config, stored_config
    from ocrframe.plugins import load_plugins
    from ocrframe.pretrained import card_front_matter, read_weights, write_weights

    load_plugins()
    notes = Path(args.notes).read_text(encoding="utf-8") if args.notes else f"# {args.name}\n\n{args.summary}\n"
    state = load_checkpoint(args.checkpoint)
    cfg = stored_config(state, args.checkpoint)
    cfg.model.alignment_loss = 0.0  # the probe trains the backbone; a released model reads without it
    weights = {k: v for k, v in state["state_dict"].items() if not k.startswith("alignment_probe.")}
    model = build_trained_model(cfg.model, weights, args.checkpoint)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".release-") as tmp:  # in OUT: the final rename stays on one disk
        staged = write_weights(model.state_dict(), store_config({}, cfg), Path(tmp) / f"{args.name}.safetensors",
                               DTYPES[args.dtype])
        released = build_trained_model(cfg.model, read_weights(staged)["state_dict"], staged)
        datasets = test_sets(cfg, args.limit)
        scores, texts = transcriptions(model, datasets, Path(tmp) / "fp32.tsv")
        scores_released, texts_released = transcriptions(released, datasets, Path(tmp) / "released.tsv")
        metrics = card_metrics(args, scores, scores_released, texts, texts_released)
        staged_card = Path(tmp) / f"{args.name}.md"
        staged_card.write_text(card_front_matter(args.name, staged, args.summary, metrics) + "\n" + notes,
                               encoding="utf-8")
        weights_file, card = out / staged.name, out / staged_card.name
        os.replace(staged, weights_file)
        os.replace(staged_card, card)
    differ = metrics[f"transcriptions differing from fp32 weights ({args.dtype})"]
    size = weights_file.stat().st_size / 2**20
    print(f"{weights_file} ({size:.1f} MiB, {args.dtype}) and {card}: {differ} of {len(texts)} transcriptions "
          "differ from those of the fp32 weights")
    for split, (acc, _) in scores_released.items():
        print(f"  {split} {args.accuracy_name} {acc:.1%} ({scores[split][0]:.1%} with the fp32 weights)")
    return 0


def card_metrics(args, scores: dict, scores_released: dict, texts: list[str], texts_released: list[str]) -> dict:
    """The card's metrics: the released file's accuracy per split, how many transcriptions its
    precision changed, and the fp32 weights' accuracy beside it."""
    differ = sum(a != b for a, b in zip(texts, texts_released))
    metrics = {}
    for split, (acc, ned) in scores_released.items():
        metrics.update({f"{split} {args.accuracy_name}": round(acc, 4), f"{split} 1 - NED": round(ned, 4)})
    metrics.update({"test images": len(texts), f"transcriptions differing from fp32 weights ({args.dtype})": differ})
    metrics.update({f"{split} {args.accuracy_name} with fp32 weights": round(acc, 4)
                    for split, (acc, _) in scores.items()})
    return metrics


if __name__ == "__main__":
    from ocrframe.cli import run_reporting_user_errors

    sys.exit(run_reporting_user_errors("release_model.py", main))
