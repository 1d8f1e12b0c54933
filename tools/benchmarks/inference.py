"""Reading measurements recorded in docs/benchmarks.md.

    python tools/benchmark.py infer [--checkpoint CKPT] [--val 1000] [--onnx] [--int8]   # Reader vs eager
"""
import time
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config

from ocrframe.registry import MODELS

CONFIG = "configs/crnn_vgg_bilstm_ctc.py"


def infer(args) -> None:
    """The Reader against a plain eager forward of the same model (fp32, contiguous), batch 64 and
    batch 1 of the config's test images squeezed to 32x100, then greedy transcriptions of each path
    on test images read as they are."""
    import tempfile

    from ocrframe.optim import native_bf16
    from ocrframe.checkpoint import load_model
    from ocrframe.export import onnx_model_for
    from ocrframe.inference import Reader
    from ocrframe.data.build import build_dataset

    if args.checkpoint:
        model, cfg = load_model(args.checkpoint)
        weights = args.checkpoint
    else:
        cfg = Config.fromfile(CONFIG)
        torch.manual_seed(0)
        model, weights = MODELS.build(cfg.model).eval(), "random initialisation (the equality check needs trained weights)"
    eager = MODELS.build(dict(cfg.model, channels_last=False)).eval()
    eager.load_state_dict(model.state_dict())
    native = native_bf16("cpu")
    print(f"weights: {weights}\n{torch.get_num_threads()} threads, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bf16: {'yes' if native else 'no (emulated: slow)'}")
    readers = {"fp32": Reader(model, cfg.test_pipeline, precision="fp32"),
               "bf16": Reader(model, cfg.test_pipeline, precision="bf16")}
    scratch = tempfile.TemporaryDirectory()
    checkpoint = args.checkpoint or Path(scratch.name) / "random.pth"
    if not args.checkpoint:
        torch.save(dict(state_dict=model.state_dict()), checkpoint)
    if args.onnx:
        readers["fp32, onnxruntime"] = Reader(model, cfg.test_pipeline, precision="fp32", runtime="onnxruntime",
                                              onnx_model=onnx_model_for(checkpoint, model, cfg))
    if args.int8:
        int8_model = onnx_model_for(checkpoint, model, cfg, int8=True)
        readers["int8"] = Reader(model, cfg.test_pipeline, precision="int8", onnx_model=int8_model)
        alone = Reader(model, cfg.test_pipeline, precision="int8", onnx_model=int8_model, recheck_margin=-float("inf"))

    test = build_dataset(cfg.test_dataloader.dataset, raw=True)
    picked = np.linspace(0, len(test) - 1, min(args.val, len(test))).round().astype(int)
    images = [test[int(i)]["image"] for i in picked]
    # Real images (the int8 recheck depends on them), all 32x100 as in training the paper CRNN.
    (batch64,) = map(torch.from_numpy, readers["fp32"].input_batches([im.resize((100, 32)) for im in images[:64]]))
    variants = {"eager fp32 (baseline)": lambda x: eager(x)}
    variants.update({f"Reader {name}": (lambda r: lambda x: r.log_probs(x))(r) for name, r in readers.items()
                     if name != "bf16" or native})  # emulated bf16 is several times slower than fp32: not timed
    if args.int8:
        variants["int8 alone (no fp32 recheck)"] = alone.log_probs
    print("\n| path | batch 64: images/s | vs eager | batch 1: ms/image | vs eager |\n|---|---|---|---|---|")
    rows = {}
    with torch.inference_mode():
        for batch, repeats in ((batch64, args.iters), (batch64[:1], args.iters * 16)):
            for fn in variants.values():  # warm-up
                fn(batch)
            best = {name: float("inf") for name in variants}
            for _ in range(3):  # interleaved rounds, best of each: robust to other jobs on the machine
                for name, fn in variants.items():
                    start = time.perf_counter()
                    for _ in range(repeats):
                        fn(batch)
                    best[name] = min(best[name], (time.perf_counter() - start) / repeats / len(batch))
            for name, seconds in best.items():
                rows.setdefault(name, []).append(seconds)
    base64, base1 = rows["eager fp32 (baseline)"]
    for name, (s64, s1) in rows.items():
        print(f"| {name} | {1 / s64:.0f} | {base64 / s64:.2f}x | {s1 * 1e3:.1f} | {base1 / s1:.2f}x |")

    # Greedy transcriptions of the config's test images (spread over its splits), read end to end:
    # aspect ratio kept, width-bucketed batches.
    reference = Reader(eager, cfg.test_pipeline, precision="fp32").read(images)
    print(f"\ngreedy transcriptions of {len(images)} test images (aspect ratio kept) vs eager fp32:")
    for name, reader in readers.items():
        if name == "bf16" and not native:
            continue
        reader.rechecked = 0
        start = time.perf_counter()
        texts = [p.text for p in reader.read(images)]
        elapsed = time.perf_counter() - start
        differ = sum(a != b.text for a, b in zip(texts, reference))
        print(f"  Reader {name}: {differ} differ; {len(images) / elapsed:.0f} images/s end to end"
              + (f"; {reader.rechecked} images rechecked in fp32" if name in ("bf16", "int8") else ""))
    if args.int8:
        differ = sum(a.text != b.text for a, b in zip(alone.read(images), reference))
        print(f"  int8 alone (no fp32 recheck): {differ} differ")
    scratch.cleanup()


def add_commands(sub) -> None:
    """This subject's sub-commands of tools/benchmark.py."""
    p = sub.add_parser("infer")
    p.add_argument("--checkpoint", help="trained weights (default: a randomly initialised paper CRNN)")
    p.add_argument("--val", type=int, default=1000, help="test images for the transcription check (>= 64)")
    p.add_argument("--iters", type=int, default=3, help="batch-64 passes per round (batch 1: 16x as many)")
    p.add_argument("--onnx", action="store_true", help="also the Reader on onnxruntime (the model exported, fp32)")
    p.add_argument("--int8", action="store_true", help="also the Reader's int8 path (onnxruntime, fp32 recheck)")
    p.set_defaults(func=infer)
