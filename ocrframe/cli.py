"""The ``ocrframe`` command: list, train, test, infer. ``tools/*.py`` call the same functions."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def cmd_list(args) -> int:
    from ocrframe.plugins import load_plugins
    from ocrframe.registry import SLOTS

    loader = load_plugins()
    rows = [(slot, name, str(registry.origins[name]))
            for slot, registry in SLOTS for name in sorted(registry.module_dict)
            if not args.slot or slot == args.slot]
    width = [max(len(r[i]) for r in rows + [("slot", "component", "")]) for i in range(2)]
    print(f"{'slot':<{width[0]}}  {'component':<{width[1]}}  provided by")
    for slot, name, origin in rows:
        print(f"{slot:<{width[0]}}  {name:<{width[1]}}  {origin}")
    for error in loader.errors:
        print(f"\nFAILED: {error}", file=sys.stderr)
    return 1 if loader.errors else 0


def cmd_train(args) -> int:
    from ocrframe.runner import build_runner, load_config

    cfg = load_config(args.config, schedule=args.schedule, work_dir=args.work_dir, cfg_options=args.cfg_options,
                      train_data=args.data, val_data=args.val_data)
    cfg.resume = bool(args.resume)
    if isinstance(args.resume, str):
        cfg.load_from = args.resume
    cfg.launcher = args.launcher
    cfg.test_after_train = bool(args.test and cfg.get("test_dataloader"))  # TimeBudgetHook counts it in
    runner = build_runner(cfg)
    runner.train()
    if cfg.test_after_train:
        runner.test()
    return 0


def cmd_test(args) -> int:
    from ocrframe.runner import build_runner, load_config

    cfg = load_config(args.config, schedule=args.schedule, work_dir=args.work_dir, cfg_options=args.cfg_options)
    if args.data:
        from ocrframe.runner import use_data

        use_data(cfg.test_dataloader, args.data, cfg)
    cfg.load_from = args.checkpoint
    cfg.launcher = args.launcher
    metrics = build_runner(cfg).test()
    print(json.dumps({k: round(float(v), 4) for k, v in metrics.items()}))
    return 0


def cmd_infer(args) -> int:
    from ocrframe.inference import Reader

    reader = Reader.from_checkpoint(args.checkpoint, config=args.config)
    for path, prediction in zip(args.images, reader.read(args.images)):
        print(f"{path}\t{prediction.text}\t{prediction.score:.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ocrframe.runner import add_config_arguments

    parser = argparse.ArgumentParser(prog="ocrframe", description="Registry-driven OCR (CRNN and friends).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="every registered component, its slot and the plugin providing it")
    p.add_argument("--slot", help="only this slot (backbone, sequence_encoder, head, decoder, dataset, ...)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("train", help="train a config with mmengine's Runner")
    add_config_arguments(p)
    p.add_argument("--schedule", default="auto",
                   help="'paper' (the config's top level), or a name in the config's `schedules` such as "
                        "'cpu' or 'cpu-long'; 'auto' (default) = 'cpu' without a GPU, else 'paper'")
    p.add_argument("--data", nargs="+", help="train on these LMDBs / gt.txt folders instead of the config's data")
    p.add_argument("--val-data", nargs="+", help="validate on these LMDBs / gt.txt folders")
    p.add_argument("--resume", nargs="?", const=True, default=False,
                   help="resume from the work dir's last checkpoint, or from the checkpoint given")
    p.add_argument("--no-test", dest="test", action="store_false",
                   help="skip the final evaluation on the config's test set")
    p.add_argument("--launcher", default="none", choices=["none", "pytorch", "slurm"])
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("test", help="evaluate a checkpoint")
    add_config_arguments(p)
    p.add_argument("checkpoint")
    p.add_argument("--data", nargs="+", help="LMDBs / gt.txt folders to evaluate instead of the config's test set")
    p.add_argument("--schedule", default="auto", help=argparse.SUPPRESS)
    p.add_argument("--launcher", default="none", choices=["none", "pytorch", "slurm"])
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("infer", help="read images with a trained checkpoint; prints path, text, score")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("--config", help="config to build the model from (default: the one stored in the checkpoint)")
    p.set_defaults(func=cmd_infer)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
