"""Release a trained checkpoint as a named model: NAME.safetensors (weights without pickle, the
config as data) and NAME.md (model card) in OUT; see ocrframe/pretrained.py.

    .venv/bin/python tools/release_model.py work_dirs/cpu_long/best_word_acc_iter_N.pth --name crnn-en \
        --summary "CRNN (paper), 36 lowercase alphanumerics" --notes card_text.md --out ocrframe/models

The training-only alignment probe is left out (predictions never use it). The weights are stored
in ``--dtype``: fp16 by default, half the size of fp32; on a crnn-en checkpoint 1 of 1000 test
transcriptions changed with fp16 and 8 with bf16. The tool reads the config's test set with the
checkpoint and with the released file and puts both accuracies, and how many transcriptions
differ, in the card's metrics, so the card states what the smaller file costs.
"""
from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def transcriptions(model, dataset, out: Path) -> tuple[float, float, list[str]]:
    """(word accuracy, 1 - NED, every transcription) on ``dataset``."""
    from ocrframe.evaluation import evaluate

    table = evaluate(model, {"test set": dataset}, ["none"], predictions_file=out)
    cell = next(iter(table["test set"].values()))
    with open(out, encoding="utf-8", newline="") as f:
        texts = [row["prediction"] for row in csv.DictReader(f, delimiter="\t")]
    return cell.word_acc, cell.one_minus_ned, texts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--name", required=True, help="the model's name, e.g. crnn-en")
    parser.add_argument("--summary", required=True, help="one line: what the model reads")
    parser.add_argument("--out", default="ocrframe/models", help="directory for NAME.safetensors and NAME.md")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp16")
    parser.add_argument("--notes", help="Markdown for the card's text (training command, data, host, limits, licence)")
    args = parser.parse_args(argv)

    from ocrframe.checkpoint import load_checkpoint, load_weights, store_config, stored_config
    from ocrframe.data.build import build_dataset
    from ocrframe.plugins import load_plugins
    from ocrframe.pretrained import card_front_matter, read_weights, write_weights
    from ocrframe.registry import MODELS

    load_plugins()
    state = load_checkpoint(args.checkpoint)
    cfg = stored_config(state, args.checkpoint)
    cfg.model.alignment_loss = 0.0  # the probe trains the backbone; a released model reads without it
    model = MODELS.build(cfg.model).eval()
    weights = {k: v for k, v in state["state_dict"].items() if not k.startswith("alignment_probe.")}
    load_weights(model, weights, args.checkpoint)

    out = Path(args.out)
    weights_file = write_weights(model.state_dict(), store_config({}, cfg), out / f"{args.name}.safetensors",
                                 DTYPES[args.dtype])
    released = MODELS.build(cfg.model).eval()
    load_weights(released, read_weights(weights_file)["state_dict"], weights_file)
    test_set = build_dataset(cfg.test_dataloader.dataset)
    with tempfile.TemporaryDirectory() as tmp:
        acc, ned, texts = transcriptions(model, test_set, Path(tmp) / "fp32.tsv")
        acc_released, ned_released, texts_released = transcriptions(released, test_set, Path(tmp) / "released.tsv")
    differ = sum(a != b for a, b in zip(texts, texts_released))
    metrics = {"test word accuracy": round(acc_released, 4), "test 1 - NED": round(ned_released, 4),
               "test images": len(texts), f"transcriptions differing from fp32 weights ({args.dtype})": differ,
               "test word accuracy with fp32 weights": round(acc, 4)}
    notes = Path(args.notes).read_text(encoding="utf-8") if args.notes else f"# {args.name}\n\n{args.summary}\n"
    card = out / f"{args.name}.md"
    card.write_text(card_front_matter(args.name, weights_file, args.summary, metrics) + "\n" + notes, encoding="utf-8")
    size = weights_file.stat().st_size / 2**20
    print(f"{weights_file} ({size:.1f} MiB, {args.dtype}) and {card}: test word accuracy {acc_released:.1%} "
          f"({acc:.1%} with the fp32 weights; {differ} of {len(texts)} transcriptions differ)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
