"""Reading measurements recorded in docs/benchmarks.md.

    python tools/benchmark.py infer [--checkpoint CKPT] [--val 300] [--files 1000]   # inference paths vs eager
    python tools/benchmark.py export [--config CONFIG] [--rounds 5]   # ONNX: torch's two exporters, export and reading
"""
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config

from ocrframe.registry import MODELS

CONFIG = "configs/crnn_vgg_bilstm_ctc.py"


def infer(args) -> None:
    """Every inference path against a plain eager forward of the same model (fp32, contiguous), in
    one process, rounds interleaved (best of each): network only, batch 64 of the config's test
    images squeezed to 32x100 and those images one at a time; then `Reader.read` of one image; the
    greedy transcriptions of ``--val`` test images read as they are, against eager fp32; and
    `ocrframe read`'s work on ``--files`` image files (decode + resize + network + decode) against
    the network's own time on the same batches. Ratios are side by side, so a machine shared
    with other work still gives fair comparisons."""
    import tempfile

    from ocrframe import autotune
    from ocrframe.checkpoint import load_model
    from ocrframe.data.build import build_dataset
    from ocrframe.inference import Reader
    from ocrframe.optim import native_bf16

    scratch = tempfile.TemporaryDirectory()
    if args.checkpoint:
        checkpoint = args.checkpoint
        model, cfg = load_model(checkpoint)
    else:
        cfg = Config.fromfile(CONFIG)
        torch.manual_seed(0)
        model = MODELS.build(cfg.model).eval()
        checkpoint = Path(scratch.name) / "random.pth"
        from ocrframe.checkpoint import store_config
        torch.save(dict(meta=store_config({}, cfg), state_dict=model.state_dict()), checkpoint)
    if args.cache:
        os.environ["OCRFRAME_CACHE"] = args.cache  # a fresh cache times the paths again
    eager = MODELS.build(dict(cfg.model, channels_last=False)).eval()
    eager.load_state_dict(model.state_dict())
    native = native_bf16("cpu")
    print(f"weights: {checkpoint if args.checkpoint else 'random initialisation (transcriptions mean little)'}\n"
          f"{torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}, native bf16: "
          f"{'yes' if native else 'no (emulated: slow, left out)'}, load average {os.getloadavg()[0]:.1f} "
          f"(other work on the machine slows every path alike; compare the ratios)")

    test = build_dataset(cfg.test_dataloader.dataset, raw=True)
    count = max(args.val, args.files, 64)
    picked = np.linspace(0, len(test) - 1, min(count, len(test))).round().astype(int)
    images = [test[int(i)]["image"] for i in picked]
    start = time.perf_counter()
    default = Reader.from_checkpoint(checkpoint, device="cpu", **({"runtime": "torch"} if args.no_onnx else {}))
    print(f"\nReader default (precision='auto', runtime='auto'), set up in {time.perf_counter() - start:.1f} s "
          f"(ONNX export and calibration happen once per model, host and batch size, then are cached):")
    start = time.perf_counter()
    print(default.explain() + f"\n(took {time.perf_counter() - start:.1f} s)")

    fixed = {p: Reader(model, cfg.test_pipeline, precision=p.split()[1], runtime=p.split()[0],
                       onnx_model=default._session_for) for p in default.paths}
    fixed.pop(autotune.REFERENCE, None)
    variants = {"eager fp32 (baseline)": lambda x: eager(x), "Reader default": default.log_probs}
    variants.update({f"{p}, recheck": r.log_probs for p, r in fixed.items()})
    variants.update({f"{p} alone (no recheck)": (lambda path: lambda x: default.run_path(path, x))(p)
                     for p in default.paths})
    # Real images (the recheck depends on them), squeezed to 32x100 as the paper CRNN trains.
    (batch64,) = map(torch.from_numpy, default.input_batches([im.resize((100, 32)) for im in images[:64]]))
    singles = [batch64[i:i + 1] for i in range(args.singles)]
    print(f"\n| path | batch 64: images/s | vs eager | batch 1: ms/image | vs eager | rechecked (64 / {len(singles)}) |"
          "\n|---|---|---|---|---|---|")
    rows, rechecks = {}, {}
    with torch.inference_mode():
        for batches, repeats in (([batch64], args.iters), (singles, 1)):
            for fn in variants.values():  # warm-up
                fn(batches[0])
            best = {name: float("inf") for name in variants}
            for _ in range(args.rounds):
                for name, fn in variants.items():
                    reader = getattr(fn, "__self__", None)
                    if reader is not None:
                        reader.rechecked = 0
                    start = time.perf_counter()
                    for _ in range(repeats):
                        for batch in batches:
                            fn(batch)
                    best[name] = min(best[name], (time.perf_counter() - start) / repeats / sum(map(len, batches)))
                    if reader is not None:
                        rechecks.setdefault(name, []).append(reader.rechecked // repeats)
            for name, seconds in best.items():
                rows.setdefault(name, []).append(seconds)
    base64, base1 = rows["eager fp32 (baseline)"]
    for name, (s64, s1) in rows.items():
        checked = rechecks.get(name)
        checked = f"{checked[0]} / {checked[-1]}" if checked else "-"
        print(f"| {name} | {1 / s64:.0f} | {base64 / s64:.2f}x | {s1 * 1e3:.2f} | {base1 / s1:.2f}x | {checked} |")

    # One image through the whole Reader: pipeline, network, decoding.
    one = images[:args.singles]
    inputs = {id(im): torch.from_numpy(default.input_batches([im])[0]) for im in one}
    whole = {"eager fp32 forward of the same image (network only)": lambda im: eager(inputs[id(im)]),
             "Reader default .read([image])": lambda im: default.read([im])}
    best = {name: float("inf") for name in whole}
    with torch.inference_mode():
        for _ in range(args.rounds + 1):
            for name, fn in whole.items():
                start = time.perf_counter()
                for image in one:
                    fn(image)
                best[name] = min(best[name], (time.perf_counter() - start) / len(one))
    print(f"\none image at a time, aspect ratio kept ({len(one)} test images, best of {args.rounds} rounds):")
    for name, seconds in best.items():
        print(f"  {name}: {seconds * 1e3:.2f} ms/image")

    # Greedy transcriptions of test images (spread over its splits), read end to end: aspect ratio
    # kept, width-bucketed batches.
    val = images[:args.val]
    reference = [p.text for p in Reader(eager, cfg.test_pipeline, precision="fp32", runtime="torch").read(val)]
    print(f"\ngreedy transcriptions of {len(val)} test images (aspect ratio kept) vs eager fp32:")
    readers = dict(fixed, default=default)
    for name, reader in readers.items():
        reader.rechecked = 0
        start = time.perf_counter()
        texts = [p.text for p in reader.read(val)]
        elapsed = time.perf_counter() - start
        differ = sum(a != b for a, b in zip(texts, reference))
        print(f"  Reader {name}: {differ} differ; {reader.rechecked} images rechecked in fp32; "
              f"{len(val) / elapsed:.0f} images/s end to end")
    for path in default.paths:
        if path == autotune.REFERENCE:
            continue
        alone = Reader(model, cfg.test_pipeline, precision=path.split()[1], runtime=path.split()[0],
                       onnx_model=default._session_for, recheck_margin=-math.inf)
        differ = sum(a.text != b for a, b in zip(alone.read(val), reference))
        print(f"  {path} alone (no recheck): {differ} differ")

    if args.files:
        end_to_end(default, eager, images[:args.files], Path(scratch.name), args.rounds)
    scratch.cleanup()


def end_to_end(reader, eager, images, scratch: Path, rounds: int) -> None:
    """`ocrframe read`'s work (decode the files, the pipeline, width buckets, network, greedy
    decoding) against the network alone on the same batches, rounds interleaved; then eager fp32
    (as evaluation reads a padded batch) on those batches, aspect ratio kept."""
    from ocrframe.data.batching import as_pil, padded_batches, pipeline_samples

    folder = scratch / "files"
    folder.mkdir()
    paths = []
    for i, image in enumerate(images):
        paths.append(folder / f"{i:05d}.png")
        image.save(paths[-1])
    samples = pipeline_samples([as_pil(p) for p in paths], reader.pipeline)
    batches = [(b["inputs"], b["data_samples"]["widths"]) for _, b in
               padded_batches(samples, reader.batch_size, reader.width_step)]

    def network_seconds(forward) -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            for inputs, widths in batches:
                forward(inputs, widths)
        return time.perf_counter() - start

    best_read = best_net = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        reader.read([as_pil(p) for p in paths])  # what `ocrframe read` does per chunk, less the printing
        best_read = min(best_read, time.perf_counter() - start)
        best_net = min(best_net, network_seconds(reader.log_probs))
    # Eager fp32 in rounds of its own: interleaved with them, `read` took 1.41x the network instead
    # of 1.13x (docs/benchmarks.md), likely oneDNN re-creating kernels that eager's fp32 kernels for
    # the same ~35 batch shapes had pushed out of its primitive cache.
    best_eager = min(network_seconds(lambda inputs, widths: eager(inputs, dict(widths=widths)))
                     for _ in range(rounds))
    padded = sum(bool((widths < inputs.shape[-1]).any()) for inputs, widths in batches)
    print(f"\n`ocrframe read` work on {len(paths)} PNG files: {best_read:.2f} s end to end, {best_net:.2f} s in the "
          f"network (same batches, same paths, recheck included): {best_read / best_net:.2f}x "
          f"({len(paths) / best_read:.0f} images/s)")
    print(f"the network on those {len(batches)} batches ({padded} of them padded), eager fp32: {best_eager:.2f} s; "
          f"Reader default {best_eager / best_net:.2f}x eager")


def export(args) -> None:
    """The ONNX file of a randomly initialised model of ``--config`` written by torch's dynamo
    exporter (``ocrframe.export.export_onnx``, what ocrframe uses) and by its TorchScript exporter
    (``dynamo=False``, ONNX's own LSTM operator): the time each export takes (each in a fresh
    process, as a first export is), their largest difference from PyTorch and whether they decode
    the same, and onnxruntime's time to read batches of 64 at three widths (best of ``--rounds``)."""
    import json
    import subprocess
    import sys
    import tempfile

    from ocrframe.export import check_onnx, onnx_session

    scratch = tempfile.TemporaryDirectory()  # removed with the process
    files = {name: Path(scratch.name) / f"{name}.onnx" for name in ("dynamo", "torchscript")}
    script = """
import json, sys, time, warnings
import torch
from mmengine.config import Config
from ocrframe.export import export_onnx
from ocrframe.registry import MODELS
config, exporter, out = sys.argv[1:]
torch.manual_seed(0)
model = MODELS.build(Config.fromfile(config).model).eval()
start = time.perf_counter()
if exporter == "dynamo":
    export_onnx(model, out)
else:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(2, model.in_channels, 32, 16),), out, dynamo=False, opset_version=18,
                          input_names=["images"], output_names=["log_probs"],
                          dynamic_axes={"images": {0: "batch", 3: "width"}, "log_probs": {0: "batch", 1: "frames"}})
print(json.dumps(time.perf_counter() - start))
"""
    seconds = {}
    for name, out in files.items():
        result = subprocess.run([sys.executable, "-c", script, args.config, name, str(out)], capture_output=True,
                                text=True, check=True)
        seconds[name] = json.loads(result.stdout.strip().splitlines()[-1])
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(args.config).model).eval()
    widths = (100, 200, 400)
    print(f"{args.config}, {torch.get_num_threads()} threads; onnxruntime batches of 64 at widths {widths}")
    for name, out in files.items():
        check = check_onnx(model, out, shapes=((1, 100), (3, 157), (2, 411)))
        session = onnx_session(out)
        best = []
        for width in widths:
            images = np.random.default_rng(width).uniform(-1, 1, (64, model.in_channels, 32, width)).astype(np.float32)
            session.run(None, {"images": images})  # warm-up
            times = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                session.run(None, {"images": images})
                times.append(time.perf_counter() - start)
            best.append(min(times))
        print(f"{name:12s} export {seconds[name]:6.1f} s  file {out.stat().st_size / 1e6:5.1f} MB  "
              f"max |diff| {check['max_abs_diff']:.1e}  same transcriptions {check['same_transcriptions']}  "
              f"read {' / '.join(f'{t * 1000:.0f}' for t in best)} ms")


def add_commands(sub) -> None:
    """This subject's sub-commands of tools/benchmark.py."""
    p = sub.add_parser("infer")
    p.add_argument("--checkpoint", help="trained weights (default: a randomly initialised paper CRNN)")
    p.add_argument("--val", type=int, default=300, help="test images for the transcription check")
    p.add_argument("--files", type=int, default=1000, help="image files for the end-to-end figure (0: none)")
    p.add_argument("--iters", type=int, default=2, help="batch-64 passes per round")
    p.add_argument("--singles", type=int, default=16, help="images read one at a time per round")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the best of each path is kept")
    p.add_argument("--cache", help="OCRFRAME_CACHE for the run (ONNX files, calibrations); a fresh one times again")
    p.add_argument("--no-onnx", action="store_true", help="PyTorch paths only")
    p.set_defaults(func=infer)
    p = sub.add_parser("export")
    p.add_argument("--config", default=CONFIG, help="the model to export, randomly initialised")
    p.add_argument("--rounds", type=int, default=5, help="timed reads per width; the best is kept")
    p.set_defaults(func=export)
