"""The ``ocrframe`` command: list, models, train, test, compare, read, export, browse, plot, ablate.
``tools/*.py`` call the same functions."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import NamedTuple


def cmd_list(args) -> int:
    from ocrframe.discovery import failed_plugins, list_components

    rows = [(c.slot, c.name, str(c.origin)) for c in list_components(args.slot)]
    width = [max(len(r[i]) for r in rows + [("slot", "component", "")]) for i in range(2)]
    print(f"{'slot':<{width[0]}}  {'component':<{width[1]}}  provided by")
    for slot, name, origin in rows:
        print(f"{slot:<{width[0]}}  {name:<{width[1]}}  {origin}")
    errors = failed_plugins()
    for error in errors:
        print(f"\nFAILED: {error}", file=sys.stderr)
    return 1 if errors else 0


def cmd_models(args) -> int:
    from ocrframe.plugins import load_plugins
    from ocrframe.pretrained import available_models

    loader = load_plugins()
    cards = available_models()
    if not cards:
        print("no released models are installed")
    for card in sorted(cards.values(), key=lambda c: c.name):
        metrics = ", ".join(f"{k} {v:.1%}" if isinstance(v, float) and v <= 1 else f"{k} {v}"
                            for k, v in card.metrics.items())
        print(f"{card.name}\n    {card.summary}\n    {metrics}\n    {card.plugin}; card: {card.card}")
    for error in loader.errors:
        print(f"\nFAILED: {error}", file=sys.stderr)
    return 1 if loader.errors else 0


def cmd_train(args) -> int:
    from ocrframe.runner import build_runner, load_config

    cfg = load_config(args.config, schedule=args.schedule, work_dir=args.work_dir, cfg_options=args.cfg_options,
                      train_data=args.data, val_data=args.val_data, tensorboard=args.tensorboard, resume=args.resume,
                      amp=args.amp, auto_scale_lr=args.auto_scale_lr, launcher=args.launcher,
                      test_after_train=args.test, load_from=args.load_from)
    runner = build_runner(cfg)
    runner.train()
    if cfg.test_after_train:
        runner.test()
    return 0


def cmd_test(args) -> int:
    from ocrframe.checkpoint import load_checkpoint
    from ocrframe.runner import build_runner, load_config

    table = bool(args.lexicon)  # the Table 2 evaluation runs outside the Runner, on its own data
    state = load_checkpoint(args.checkpoint) if table else None  # read once: config and weights of the table
    cfg = load_config(args.config, schedule=args.schedule, work_dir=args.work_dir, cfg_options=args.cfg_options,
                      checkpoint=args.checkpoint, checkpoint_state=state,
                      test_data=None if table else args.data, launcher=None if table else args.launcher)
    if table:
        return lexicon_table(args, cfg, state)
    metrics = build_runner(cfg).test()
    print(json.dumps({k: round(float(v), 4) for k, v in metrics.items()}))
    return 0


def lexicon_table(args, cfg, state: dict) -> int:
    """`ocrframe test --lexicon ...`: the paper's Table 2 (ocrframe/evaluation.py), read by the
    checkpoint ``state``'s weights."""
    import torch

    from ocrframe.checkpoint import build_trained_model
    from ocrframe.evaluation import SEQUENCE_HEADER, WORD_HEADER, column_name, evaluate, format_table, reads_tokens
    from ocrframe.data.build import build_dataset, dataset_for, mark_for_evaluation

    for mode in args.lexicon:
        if mode not in ("none", "sample", "full") and not Path(mode).is_file():
            raise FileNotFoundError(f"--lexicon {mode}: not none, sample or full, and no such word file")
    if len({column_name(m) for m in args.lexicon}) != len(args.lexicon):
        raise ValueError(f"--lexicon {' '.join(args.lexicon)}: two columns would have the same name")
    # cfg holds the checkpoint's model already (load_config)
    model = build_trained_model(cfg.model, state.get("state_dict", state), args.checkpoint,
                                partial=bool(cfg.get("load_partial", False)),
                                advice="Pass the config it was trained with, or load only the matching weights: "
                                       "--cfg-options load_partial=True")
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    if args.data:
        names = [Path(p).name for p in args.data]
        if len(set(names)) != len(names):  # rows are named by the last path component
            names = [str(p) for p in args.data]
        datasets = {name: build_dataset(mark_for_evaluation(dataset_for([p], cfg, cfg.test_pipeline)))
                    for name, p in zip(names, args.data)}
    else:
        datasets = {"test set": build_dataset(cfg.test_dataloader.dataset)}
    out = Path(args.predictions or Path(cfg.work_dir) / "predictions.tsv")
    table = evaluate(model, datasets, args.lexicon, delta=args.delta, batch_size=args.batch_size,
                     predictions_file=out)
    print(format_table(table, args.lexicon, SEQUENCE_HEADER if reads_tokens(model) else WORD_HEADER))
    print(f"predictions (dataset, lexicon, key, truth, prediction, score, correct): {out}")
    return 0


READ_CHUNK = 1024  # images decoded and read at a time by `ocrframe read`,
READ_PIXELS = 2**26  # or fewer: at most about 64 M decoded pixels (192 MiB in RGB), however large the photos
# the common formats Pillow reads (PIL.Image.registered_extensions() also lists write-only and exotic ones)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".gif",
                  ".pbm", ".pgm", ".ppm", ".pnm", ".jp2", ".j2k", ".tga", ".pcx"}


def read_inputs(inputs: list[Path]) -> list[tuple[Path | ImagePage, str | None, list[str] | None]]:
    """(image, ground truth or None, per-image lexicon or None) for image files, folders of images,
    gt.txt files and folders holding a gt.txt. The image is a path, or an ImagePage for each page
    of a file of several (a gt.txt line labels one image: its file's first page is read)."""
    from ocrframe.data.gt_folder import read_gt_lines

    items = []
    for path in inputs:
        gt = path / "gt.txt" if path.is_dir() else path if path.suffix == ".txt" else None
        if gt is not None and gt.is_file():
            items += [(gt.parent / e.path, e.label, list(e.lexicon) if e.lexicon else None) for e in read_gt_lines(gt)]
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            found = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
            others = [p for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
            left_out = (f"left out {len(others)} file(s) that are not images by their extension, e.g. "
                        f"{others[0].relative_to(path)}") if others else ""
            if not found:
                raise FileNotFoundError(f"{path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}) and no gt.txt"
                                        + (f"; {left_out}" if left_out else ""))
            if left_out:
                print(f"{path}: {left_out}", file=sys.stderr)
            items += [item for p in found for item in page_items(p)]
        else:
            items += page_items(path)
    return items


class ImagePage(NamedTuple):
    """One page of an image file of several (a multi-page TIFF, an animation), read on its own."""
    path: Path
    index: int  # from 0
    count: int

    def __str__(self) -> str:
        return f"{self.path}[page {self.index + 1}/{self.count}]"


def page_items(path: Path) -> list[tuple]:
    """A file given to `ocrframe read` as items: itself, or each of its pages."""
    from ocrframe.data.base import image_pages

    pages = image_pages(path) if path.is_file() else 1  # a missing file is reported when it is read
    return [(path, None, None)] if pages == 1 else [(ImagePage(path, i, pages), None, None) for i in range(pages)]


def cmd_read(args) -> int:
    from ocrframe.data.base import SkipCounter
    from ocrframe.evaluation import reading_is_right, reads_tokens
    from ocrframe.inference import Reader
    from ocrframe.metrics import score_pairs

    if args.frames and not args.json:
        raise ValueError("--frames needs --json: each character's frame and pixel column are JSON lists")
    items = read_inputs(args.inputs)
    if args.lexicon == "sample":
        missing = [str(path) for path, _, lexicon in items if lexicon is None]
        if missing:
            raise ValueError(f"--lexicon sample needs a lexicon (third gt.txt column) for every image; "
                             f"{len(missing)} have none, e.g. {missing[:3]}")
    reader = Reader.from_checkpoint(args.checkpoint, config=args.config, device=args.device,
                                    batch_size=args.batch_size, precision=args.precision, runtime=args.runtime,
                                    calibration=calibration_images(args.calibration))
    is_right = reading_is_right(reader.model)
    labelled, skipped, not_found = [], SkipCounter(), SkipCounter()
    for chunk, images in decoded_chunks(items, skipped):
        lexicon = [item[2] for item in chunk] if args.lexicon == "sample" else args.lexicon
        predictions = reader.read(images, decoder=args.decoder, lexicon=lexicon, frames=args.frames)
        for (path, truth, _), prediction in zip(chunk, predictions):
            if truth is not None:
                labelled.append((prediction.text, truth))
            # a pipeline step that found nothing says so with None, e.g. "staff": None in a photo
            absent = [key for key, value in prediction.extras.items() if value is None]
            for key in absent:
                not_found.add(f"image(s) with no {key} found", str(path))
            if args.json:
                record = (dict(image=str(path.path), page=path.index + 1, pages=path.count)
                          if isinstance(path, ImagePage) else dict(image=str(path)))
                record.update(text=prediction.text, score=round(prediction.score, 4))
                if truth is not None:
                    record.update(truth=truth, correct=is_right(prediction.text, truth))
                record.update(prediction.extras)
                print(json.dumps(record, ensure_ascii=False))
            else:
                columns = [str(path), prediction.text, f"{prediction.score:.3f}"] + ([truth] if truth is not None else [])
                print("\t".join(columns))
                for key in absent:
                    print(f"{path}: no {key} found; read as it is", file=sys.stderr)
    if args.explain:
        print(reader.explain(), file=sys.stderr)
    with_truth = sum(truth is not None for _, truth, _ in items)
    if labelled:
        m = score_pairs(labelled)
        of = f" of {with_truth}" if with_truth > len(labelled) else ""
        unreadable = f" ({with_truth - len(labelled)} unreadable)" if of else ""
        accuracy = (f"sequence accuracy {m['word_acc_exact']:.1%} (every token right)" if reads_tokens(reader.model)
                    else f"word accuracy {m['word_acc']:.1%} (case-insensitive alphanumerics), exact "
                         f"{m['word_acc_exact']:.1%}")
        print(f"accuracy on {len(labelled)}{of} labelled images{unreadable}: {accuracy}, 1-NED "
              f"{m['one_minus_ned']:.3f}, CER {m['cer']:.1%}", file=sys.stderr)
    elif with_truth:
        print(f"no accuracy: none of the {with_truth} labelled images is readable", file=sys.stderr)
    if not_found.total():
        print(f"read as they are: {not_found.summary()}", file=sys.stderr)
    if skipped.total():
        print(f"skipped {skipped.total()} unreadable image(s): {skipped.summary()}", file=sys.stderr)
    return 1 if skipped.total() else 0


def decoded_chunks(items: list, skipped):
    """(items, their decoded images), READ_CHUNK images or READ_PIXELS pixels at a time, so that
    memory stays bounded however many and however large the images; an unreadable image or page is
    counted in ``skipped`` (a SkipCounter)."""
    from ocrframe.data.base import BadSample, decode_image

    chunk, images, pixels = [], [], 0
    for item in items:
        source = item[0]  # a file of several pages is an ImagePage per page already (read_inputs)
        path, page = (source.path, source.index) if isinstance(source, ImagePage) else (source, 0)
        try:
            image = decode_image(path, str(source), page=page)
        except BadSample as bad:
            skipped.add(bad.reason, str(item[0]), bad.detail)
            continue
        chunk.append(item)
        images.append(image)
        pixels += image.width * image.height
        if len(images) == READ_CHUNK or pixels >= READ_PIXELS:
            yield chunk, images
            chunk, images, pixels = [], [], 0
    if images:
        yield chunk, images


def calibration_images(paths: list[Path] | None) -> list[Path] | None:
    """--calibration: image files, folders of images or gt.txt files, as for `ocrframe read`."""
    if not paths:
        return None
    sources = [source for source, _, _ in read_inputs(paths)]
    return [source.path if isinstance(source, ImagePage) else source  # the first page of each file
            for source in sources if not isinstance(source, ImagePage) or source.index == 0]


def cmd_export(args) -> int:
    from ocrframe.export import check_onnx, export_onnx
    from ocrframe.checkpoint import load_model

    from ocrframe.fileio import check_writable

    if args.calibration and not args.int8:
        raise ValueError("--calibration is for --int8")
    check_writable(args.onnx, "--onnx file")  # before loading and exporting, not after
    model, cfg = load_model(args.checkpoint, args.config)
    if args.int8:
        return export_int8_file(args, model, cfg)
    out = export_onnx(model, args.onnx, pipeline=cfg.test_pipeline, opset=args.opset)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB): images (batch, {model.in_channels}, 32, width) "
          "-> log_probs (batch, frames, classes); charset and preprocessing in its metadata")
    if args.check:
        result = check_onnx(model, out)
        print(f"onnxruntime agrees with PyTorch: largest log-prob difference {result['max_abs_diff']:.1e}, "
              "same greedy transcriptions")
    return 0


def export_int8_file(args, model, cfg) -> int:
    from ocrframe.export import CALIBRATION_IMAGES, quantized_model, validation_images
    from ocrframe.inference import Reader

    images = calibration_images(args.calibration) or validation_images(cfg)
    out = quantized_model(model, cfg, args.onnx, images, args.opset)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB): int8 convolutions, calibrated on "
          f"{min(len(images), CALIBRATION_IMAGES)} images; run it with Reader(model, pipeline, precision='int8', "
          f"onnx_model='{out}')")
    if args.check:
        fp32 = Reader(model, cfg.test_pipeline, precision="fp32")
        int8 = Reader(model, cfg.test_pipeline, precision="int8", onnx_model=out, recheck_margin=-math.inf)
        same = sum(a.text == b.text for a, b in zip(int8.read(images), fp32.read(images)))
        print(f"onnxruntime int8 alone reads {same} of the {len(images)} images as PyTorch fp32 does (the Reader "
              "re-reads images with a near tie in fp32)")
    return 0


def cmd_browse(args) -> int:
    from ocrframe.visualize import dataset_cells, save_grid

    dataset = browse_dataset(args)
    cells, failed = dataset_cells(dataset, args.num, args.start, args.shuffle, args.seed,
                                  processed=args.as_model_sees_it)
    if not cells:
        print(f"no sample of {len(dataset)} could be loaded (see the warnings above)", file=sys.stderr)
        return 1
    path = save_grid(cells, args.out)
    skipped = getattr(dataset, "skipped", None)
    print(f"wrote {path}: {len(cells)} of {len(dataset)} samples"
          + (f"; {failed} could not be loaded" if failed else "")
          + (f"; left out when the dataset was built: {skipped.summary()}" if skipped and skipped.total() else ""))
    return 1 if failed else 0


def browse_dataset(args):
    """The dataset ``ocrframe browse`` shows: LMDB / gt.txt folder, a config's split, or a
    registered dataset type, without the pipeline unless --as-model-sees-it."""
    from mmengine.config import Config

    from ocrframe.data.build import build_dataset, dataset_for

    target = args.dataset
    if target.endswith(".py"):
        if not Path(target).is_file():
            raise FileNotFoundError(f"config {target} does not exist")
        cfg = Config.fromfile(target)
        dataset_cfg = cfg[f"{args.split}_dataloader"].dataset
    else:
        if not Path(args.config).is_file():
            raise FileNotFoundError(f"config {args.config} does not exist; pass --config CONFIG (its charset decides "
                                    "which labels are usable)")
        cfg = Config.fromfile(args.config)
        if Path(target).exists():
            dataset_cfg = dataset_for([target], cfg, cfg.test_pipeline)
        elif "/" in target or os.sep in target or target.endswith((".lmdb", ".mdb", ".txt")):  # a path, not a type
            raise FileNotFoundError(f"{target} does not exist (an LMDB, a folder with a gt.txt, a config or a "
                                    "registered dataset type)")
        else:
            dataset_cfg = dict(type=target, charset=cfg.charset)  # a registered dataset type
    dataset_cfg = Config(dict(dataset=dataset_cfg))
    if args.options:
        dataset_cfg.merge_from_dict({f"dataset.{k}": v for k, v in args.options.items()})
    return build_dataset(dataset_cfg.dataset, raw=not args.as_model_sees_it)


def cmd_plot(args) -> int:
    from ocrframe.visualize import plot_curves

    out = plot_curves(args.work_dir, args.out or Path(args.work_dir) / "curves.png")
    print(f"wrote {out}")
    return 0


def cmd_compare(args) -> int:
    from ocrframe.evaluation import compare_predictions

    print(compare_predictions(args.first, args.second))
    return 0


def cmd_ablate(args) -> int:
    import shlex

    from ocrframe.ablation import Budget, Sweep

    sweep = Sweep(args.configs, Budget.parse(args.budget), args.out, seeds=args.seeds, schedule=args.schedule,
                  train_data=args.data, val_data=args.val_data, cfg_options=args.cfg_options,
                  command=shlex.join(["python", "tools/ablate.py", *args.argv]))
    sweep.run()
    return 0


def positive_int(text: str) -> int:
    if not text.strip().lstrip("+").isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, not {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    from mmengine.config import DictAction

    from ocrframe.runner import add_config_arguments

    parser = argparse.ArgumentParser(prog="ocrframe", description="Registry-driven OCR (CRNN and friends).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="every registered component, its slot and the plugin providing it")
    p.add_argument("--slot", help="only this slot (backbone, sequence_encoder, head, decoder, dataset, ..., hook, "
                                  "optim_wrapper, loop, data_sampler, function, model_wrapper)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("models", help="the released models (name, what it reads, its accuracy), usable wherever "
                                      "a checkpoint is")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("train", help="train a config with mmengine's Runner")
    add_config_arguments(p)
    p.add_argument("--schedule", default="auto",
                   help="'paper' (the config's top level), or a name in the config's `schedules` such as "
                        "'cpu' or 'cpu-long'; 'auto' (default) = 'cpu' without a GPU ('cpu-fp32', where the config "
                        "has one, on a CPU without fast bf16 kernels), else 'paper'")
    p.add_argument("--data", nargs="+", help="train on these LMDBs / gt.txt folders instead of the config's data")
    p.add_argument("--val-data", nargs="+", help="validate on these LMDBs / gt.txt folders")
    p.add_argument("--resume", nargs="?", const=True, default=False,
                   help="resume from the work dir's last checkpoint, or from the checkpoint given")
    p.add_argument("--load-from", metavar="MODEL",
                   help="start from trained weights (a released model's name, see `ocrframe models`, or a "
                        "checkpoint); with --schedule auto, the config's 'finetune' schedule runs")
    p.add_argument("--no-test", dest="test", action="store_false",
                   help="skip the final evaluation on the config's test set")
    p.add_argument("--launcher", default="none", choices=["none", "pytorch", "slurm"],
                   help="set by tools/dist_train.sh (torchrun) and tools/slurm_train.sh (srun)")
    p.add_argument("--amp", action="store_true",
                   help="mixed precision: CUDA AMP (bf16, or fp16 with loss scaling), CPU bf16 autocast")
    p.add_argument("--auto-scale-lr", action="store_true",
                   help="scale the learning rate by (processes x batch size) / the config's "
                        "auto_scale_lr.base_batch_size (see docs/distributed.md)")
    p.add_argument("--tensorboard", action="store_true",
                   help="also log to TensorBoard (event files in the work dir: tensorboard --logdir WORK_DIR)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("test", help="evaluate a checkpoint")
    add_config_arguments(p)
    p.add_argument("checkpoint", help="a checkpoint, a released model's name (ocrframe models) or its .safetensors file")
    p.add_argument("--data", nargs="+", help="LMDBs / gt.txt folders to evaluate instead of the config's test set")
    p.add_argument("--lexicon", nargs="+", metavar="none|sample|full|FILE",
                   help="print the paper's Table 2 instead: one row per --data set, one column per lexicon: none "
                        "(lexicon-free), sample (each image's own lexicon), full (union of a set's image lexicons), "
                        "a word file (e.g. /usr/share/hunspell/en_US.dic) or a .jsonl of {key, lexicon} lines")
    p.add_argument("--delta", type=int, default=3,
                   help="with --lexicon full / FILE: score the words within this edit distance of the "
                        "lexicon-free reading (the paper's delta; default 3)")
    p.add_argument("--predictions", type=Path, help="with --lexicon: where the predictions go (TSV; default "
                                                    "WORK_DIR/predictions.tsv)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="with --lexicon: images per forward pass")
    p.add_argument("--schedule", default="auto", help=argparse.SUPPRESS)
    p.add_argument("--launcher", default="none", choices=["none", "pytorch", "slurm"])
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("read", aliases=["infer"], help="read images with a trained checkpoint: one line per image",
                       description="Prints path, text, score (and the ground truth, if known) per image, and per "
                                   "page of a multi-page file (a TIFF's pages, an animation's frames), named "
                                   "FILE[page N/COUNT]. Inputs: "
                                   "image files, folders of images, gt.txt files or folders with a gt.txt; with "
                                   "ground truth, the accuracy is reported at the end (on stderr), as is what was "
                                   "left out: unreadable images, files without an image extension in a folder, "
                                   "images in which the pipeline found nothing (e.g. no staff).")
    p.add_argument("checkpoint", metavar="CHECKPOINT_OR_MODEL",
                   help="a checkpoint, a released model's name (ocrframe models) or its .safetensors file")
    p.add_argument("inputs", nargs="+", type=Path, metavar="IMAGE_OR_FOLDER")
    p.add_argument("--config", help="config to build the model from (default: the one stored in the checkpoint)")
    p.add_argument("--decoder", help="a registered decoder, by name or a unique part of it (`ocrframe list "
                                     "--slot decoder`); default: the model's")
    p.add_argument("--lexicon", help="a file of words the results must come from, or 'sample' for each "
                                     "image's own lexicon (third column of gt.txt)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--frames", action="store_true",
                   help="with --json: also give each character's frame and pixel column (frames, x)")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "int8"],
                   help="auto: the fastest path that reads as fp32 does, timed once per model, host and batch "
                        "size and cached (--explain shows the choice); bf16, int8 (quantized, run by "
                        "onnxruntime): images whose text could differ re-read in fp32 (see docs/benchmarks.md)")
    p.add_argument("--runtime", default="auto", choices=["auto", "torch", "onnxruntime"],
                   help="onnxruntime: the model exported to ONNX (made once, cached); auto: chosen with the "
                        "precision")
    p.add_argument("--explain", action="store_true",
                   help="say which inference path reads which batches and why (on stderr)")
    p.add_argument("--calibration", nargs="+", type=Path, metavar="IMAGE_OR_FOLDER",
                   help="with --precision int8: images to calibrate on (default: the config's validation set; "
                        "then the int8 model is cached)")
    p.add_argument("--device", default="auto", help="cpu, cuda, ... (default: cuda if available)")
    p.set_defaults(func=cmd_read)

    p = sub.add_parser("export", help="export a checkpoint to ONNX (dynamic batch and width)")
    p.add_argument("checkpoint", help="a checkpoint, a released model's name (ocrframe models) or its .safetensors file")
    p.add_argument("--onnx", required=True, type=Path, help="output file, e.g. crnn.onnx")
    p.add_argument("--config", help="config to build the model from (default: the one stored in the checkpoint)")
    p.add_argument("--opset", type=int, default=18)
    p.add_argument("--int8", action="store_true", help="quantize to int8 (onnxruntime static quantization)")
    p.add_argument("--calibration", nargs="+", type=Path, metavar="IMAGE_OR_FOLDER",
                   help="with --int8: images to calibrate on (default: the config's validation set)")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip running the exported file with onnxruntime against PyTorch")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("browse", help="a grid of a dataset's samples with their labels, to check data before training")
    p.add_argument("dataset", help="an LMDB, a folder with gt.txt, a config file (its --split), or a registered "
                                   "dataset type such as SynthWordDataset")
    p.add_argument("--out", type=Path, default=Path("grid.png"))
    p.add_argument("--config", default="configs/crnn_vgg_bilstm_ctc.py",
                   help="whose charset to check labels with (default: %(default)s)")
    p.add_argument("--split", default="train", choices=["train", "val", "test"], help="with a config as DATASET")
    p.add_argument("--num", type=positive_int, default=48)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--shuffle", action="store_true", help="a random choice of samples (--seed) instead of the first")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--options", nargs="+", action=DictAction, default={},
                   help="dataset settings, e.g. seed=2 assets=heldout")
    p.add_argument("--as-model-sees-it", action="store_true", help="apply the dataset's pipeline (resize, grayscale)")
    p.set_defaults(func=cmd_browse)

    p = sub.add_parser("compare", help="two models' predictions on one test set, image by image (sign test)",
                       description="Per dataset and lexicon: how many images each model reads right, how many "
                                   "only one of them does, and the exact sign test on those disagreements.")
    p.add_argument("first", type=Path, metavar="A.tsv", help="predictions of `ocrframe test --predictions`")
    p.add_argument("second", type=Path, metavar="B.tsv", help="the other model's, on the same test set")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("plot", help="loss and validation curves of a work dir (all its runs) as a PNG")
    p.add_argument("work_dir", type=Path)
    p.add_argument("--out", type=Path, help="default: WORK_DIR/curves.png")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("ablate", help="train configs for the same budget on the same data and tabulate them",
                       description="Writes OUT/results.md (config, what it changes, params, speed, accuracy mean "
                                   "± std over seeds) and OUT/results.png. Runs already in OUT/runs are not "
                                   "repeated: run the same command again to resume an interrupted sweep.")
    p.add_argument("configs", nargs="+", metavar="CONFIG",
                   help="the first is the reference the others are compared to, e.g. configs/crnn_vgg_bilstm_ctc.py "
                        "configs/ablations/encoder_identity.py")
    p.add_argument("--budget", required=True,
                   help="per run: a time (10m, 90s, 1.5h; iterations sized by TimeBudgetHook) or iterations (500)")
    p.add_argument("--seeds", type=positive_int, default=3, help="runs per config, seeds 0..N-1 (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("work_dirs/ablations"), help="default: %(default)s")
    p.add_argument("--schedule", default="auto", help="as for train: 'auto' (default), 'paper', 'cpu', ...")
    p.add_argument("--data", nargs="+", help="train on these LMDBs / gt.txt folders instead of the synthetic words")
    p.add_argument("--val-data", nargs="+", help="validate on these LMDBs / gt.txt folders")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                   help="settings for every config, e.g. val_dataloader.dataset.length=500")
    p.set_defaults(func=cmd_ablate)
    return parser


def user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that report a mistake in what the user gave (a path, a file, an option, a
    component name): shown as one line. Anything else is a bug and keeps its traceback."""
    import pickle

    from ocrframe.data.base import BadSample
    from ocrframe.registry import ComponentError

    return (OSError, ValueError, ComponentError, pickle.UnpicklingError, BadSample, ImportError)


def main(argv=None, one_line_errors: bool | None = None) -> int:
    """The command line. Run as a program (no ``argv``, or ``one_line_errors``), a user's mistake
    ends with one line naming it and exit status 2 (OCRFRAME_TRACEBACK=1 shows the traceback);
    called from Python, it raises."""
    friendly = argv is None if one_line_errors is None else one_line_errors
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv[1:]  # the command's own arguments, recorded by `ablate`
    if not friendly:
        return args.func(args)
    return run_reporting_user_errors(f"ocrframe {args.command}", lambda: args.func(args))


def run_reporting_user_errors(program: str, run) -> int:
    """``run()``'s exit status; a user's mistake (:func:`user_errors`) ends instead with one line,
    ``PROGRAM: error: ...``, and status 2 (OCRFRAME_TRACEBACK=1 shows the traceback). The command
    line and the scripts in tools/ report their errors through it."""
    if os.environ.get("OCRFRAME_TRACEBACK"):
        return run()
    try:
        return run()
    except user_errors() as exc:
        message = str(exc) if not isinstance(exc, OSError) or not exc.filename else f"{exc.strerror}: {exc.filename}"
        print(f"{program}: error: {' '.join(message.split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
