"""Fine-tune a released model on one typeface family it reads badly, and measure what it gains on
that family and what it loses elsewhere.

    .venv/bin/python tools/finetune_demo.py --model crnn-en [--samples 2000] [--replay 0] [--minutes 10] \
        [--cfg-options KEY=VALUE ...]

1. Reads ``--per-font`` words of each held-out font family (fonts training never used) and picks
   the family the model reads worst (or ``--font``).
2. Renders ``--samples`` training words of that family to an LMDB (tools/make_synth.py, its own seed),
   and ``--replay`` words of the training split's own fonts to another, mixed in against forgetting.
3. Fine-tunes with ``tools/train.py CONFIG --load-from MODEL --data LMDB [REPLAY_LMDB]`` (the
   config's ``finetune`` schedule) for ``--minutes``, with ``--cfg-options`` passed on (e.g. another
   learning rate: ``optim_wrapper.optimizer.lr=3e-5``).
4. Reads, before and after, ``--family-test`` words of that family (another seed) and the config's
   independent test set; prints the table and writes it to WORK_DIR/finetune_demo_FAMILY_SAMPLES[_replay_N].json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from ocrframe.cli import positive_int, run_reporting_user_errors

REPO = Path(__file__).resolve().parent.parent
RANK_SEED, TRAIN_SEED, FAMILY_TEST_SEED = 3, 4, 5
# A seed of its own: sample i's word is drawn before its font, so the replay words at TRAIN_SEED
# would be the family's words again, only in other fonts.
REPLAY_SEED = 8


def accuracy(model, dataset_cfg) -> float:
    from ocrframe.evaluation import evaluate
    from ocrframe.data.build import build_dataset, mark_for_evaluation

    table = evaluate(model, {"set": build_dataset(mark_for_evaluation(dataset_cfg))}, ["none"])
    return next(iter(table["set"].values())).word_acc


def family_set(cfg, font: str, count: int, seed: int):
    return dict(cfg.test_dataloader.dataset, fonts=[font], length=count, seed=seed)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="crnn-en", help="a released model's name or a checkpoint")
    parser.add_argument("--config", default=str(REPO / "configs" / "crnn_vgg_bilstm_ctc.py"))
    parser.add_argument("--font", help="the family to fine-tune on (default: the worst read)")
    parser.add_argument("--per-font", type=positive_int, default=100, help="words per family for the ranking")
    parser.add_argument("--samples", type=positive_int, default=2000, help="fine-tuning words of the family")
    parser.add_argument("--replay", type=int, default=0,
                        help="general words (the training split's fonts) mixed into the fine-tuning data")
    parser.add_argument("--family-test", type=positive_int, default=500, help="test words of the family")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--work-dir", default="work_dirs/finetune_demo")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                        help="passed on to tools/train.py (give another --work-dir to keep runs apart)")
    args = parser.parse_args(argv)
    if args.replay < 0:
        parser.error(f"--replay {args.replay}: give a number of words, 0 or more")

    from ocrframe.data.synth_text import WordRenderer, discover_assets
    from ocrframe.checkpoint import load_model
    from ocrframe.plugins import load_plugins
    from ocrframe.runner import load_config

    load_plugins()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    model, cfg = load_model(args.model)
    families = WordRenderer(discover_assets("heldout")).font_group_names
    if args.font and args.font not in families:
        raise ValueError(f"--font {args.font!r} is not a held-out font family; they are: {', '.join(families)}")
    # fails here, before any reading, without a finetune schedule or with an option the config lacks
    schedule = load_config(args.config, schedule="finetune", cfg_options=parsed_options(args.cfg_options))
    budget = [i for i, hook in enumerate(schedule.custom_hooks) if hook["type"] == "TimeBudgetHook"]
    if not budget:
        raise ValueError(f"{args.config}'s finetune schedule has no TimeBudgetHook for --minutes to set")
    if args.font:
        font, ranking = args.font, {}
    else:
        ranking = {f: accuracy(model, family_set(cfg, f, args.per_font, RANK_SEED)) for f in families}
        font = min(ranking, key=ranking.get)
        print("held-out families, word accuracy:", ", ".join(f"{f} {a:.1%}" for f, a in sorted(ranking.items(),
                                                                                                key=lambda x: x[1])))
    family_test = family_set(cfg, font, args.family_test, FAMILY_TEST_SEED)
    before = dict(family=accuracy(model, family_test), general=accuracy(model, cfg.test_dataloader.dataset))

    family = f"{font.replace(' ', '_')}_{args.samples}"
    data = [rendered(work / f"{family}.lmdb", args.samples, TRAIN_SEED, "heldout", font)]
    if args.replay:
        data.append(rendered(work / f"replay_s{REPLAY_SEED}_{args.replay}.lmdb", args.replay, REPLAY_SEED, "train"))
    name = family + (f"_replay_{args.replay}" if args.replay else "")
    run = work / f"run_{name}"
    (run / "last_checkpoint").unlink(missing_ok=True)  # read below: never a previous run's
    started = time.monotonic()
    run_tool("train.py", args.config, "--load-from", str(args.model), "--data", *map(str, data), "--work-dir", str(run),
             "--no-test", "--cfg-options", f"custom_hooks.{budget[0]}.minutes={args.minutes}", *args.cfg_options)
    minutes = (time.monotonic() - started) / 60
    tuned, _ = load_model((run / "last_checkpoint").read_text().strip())
    after = dict(family=accuracy(tuned, family_test), general=accuracy(tuned, cfg.test_dataloader.dataset))

    result = dict(model=str(args.model), font=font, ranking=ranking, samples=args.samples, replay=args.replay,
                  cfg_options=args.cfg_options, fine_tuning_minutes=round(minutes, 1), before=before, after=after,
                  family_test_words=args.family_test)
    (work / f"finetune_demo_{name}.json").write_text(json.dumps(result, indent=2))
    mixed = f" and {args.replay} general words" if args.replay else ""
    print(f"\nfine-tuned on {args.samples} words of '{font}'{mixed} for {minutes:.1f} min (wall, incl. start-up)\n")
    print("| word accuracy | before | after |\n|---|---:|---:|")
    print(f"| '{font}' ({args.family_test} words, unseen seed) | {before['family']:.1%} | {after['family']:.1%} |")
    print(f"| independent test set (1000 words, all held-out families) | {before['general']:.1%} | "
          f"{after['general']:.1%} |")
    return 0


def parsed_options(options: list[str]) -> dict:
    """``KEY=VALUE`` strings as tools/train.py reads them (mmengine's DictAction); the strings
    themselves are passed on."""
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(prog="finetune_demo.py", add_help=False)
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={})
    return parser.parse_args(["--cfg-options", *options]).cfg_options if options else {}


def rendered(lmdb: Path, count: int, seed: int, assets: str, font: str | None = None) -> Path:
    """``count`` synthetic words of ``seed`` and ``assets`` (one font family if given) in ``lmdb``,
    rendered once; written whole under another name first, so an interrupted run leaves no half
    LMDB to reuse."""
    if not lmdb.exists():
        partial = lmdb.with_name(lmdb.name + ".partial")
        run_tool("make_synth.py", str(partial), "--overwrite", "--num", str(count), "--seed", str(seed),
                 "--assets", assets, *(["--fonts", font] if font else []))
        partial.rename(lmdb)
    return lmdb


def run_tool(script: str, *args: str) -> None:
    """Run tools/SCRIPT; if it fails (it has said why), stop here too."""
    status = subprocess.run([sys.executable, str(REPO / "tools" / script), *args]).returncode
    if status:
        sys.exit(f"finetune_demo.py: {script} failed (exit status {status}; its error is above)")


if __name__ == "__main__":
    sys.exit(run_reporting_user_errors("finetune_demo.py", main))
