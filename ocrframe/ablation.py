"""Ablation sweeps: train configs that each change one thing for the same budget on the same data,
evaluate them on the same validation set, and tabulate the results (results.md, results.png).

Each (config, seed) run leaves ``OUT/runs/CONFIG__seedN.json``; a sweep started again skips the
runs that have one, so an interrupted sweep resumes where it stopped. Configs that differ from
another one of the sweep only in ``model.decoder`` train identically: such a group is trained once
per seed and the trained model is evaluated with each decoder.
"""
from __future__ import annotations

import copy
import gc
import json
import math
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from mmengine.hooks import Hook

from ocrframe.fileio import atomic_output, atomic_write
from ocrframe.optim import refitted_end
from ocrframe.visualize import training_curves
from ocrframe.metrics import WordMetric
from ocrframe.registry import DECODERS, METRICS, MODELS
from ocrframe.runner import build_runner, load_config

CHANGES_IGNORED = {"work_dir", "experiment_name", "randomness", "schedule"}  # set per run by the sweep
_MISSING = object()


@dataclass(frozen=True)
class Budget:
    """Training budget of every run: wall-clock minutes (sized by TimeBudgetHook) or iterations."""

    minutes: float | None = None
    iters: int | None = None

    @classmethod
    def parse(cls, text: str) -> "Budget":
        """"10m", "90s", "1.5h" (time) or "500" (iterations)."""
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(text))
        if not match or float(match[1]) <= 0 or (not match[2] and not match[1].isdigit()):
            raise ValueError(f"budget {text!r} is neither a time such as 10m, 90s, 1.5h nor a number of iterations")
        if not match[2]:
            return cls(iters=int(match[1]))
        return cls(minutes=float(match[1]) * {"s": 1 / 60, "m": 1, "h": 60}[match[2]])

    def __str__(self) -> str:
        return f"{self.iters} iterations" if self.iters else f"{self.minutes:g} min"


class SweepRecorder(Hook):
    """Measures a run: training images/s (iteration to iteration, validations left out, the first
    ``skip`` iterations too: they include lazy initialisation) and the last validation's metrics."""

    priority = "VERY_LOW"

    def __init__(self, skip: int = 1):
        self.skip = skip
        self.train_seconds, self.train_images = 0.0, 0
        self.last_iter_end = None
        self.val_seconds_since_iter = 0.0
        self.metrics, self.eval_images_per_s = None, None

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        now = time.monotonic()
        if self.last_iter_end is not None and runner.iter >= self.skip:
            self.train_seconds += now - self.last_iter_end - self.val_seconds_since_iter
            self.train_images += len(data_batch["inputs"])
        self.last_iter_end, self.val_seconds_since_iter = now, 0.0

    def before_val_epoch(self, runner) -> None:
        self.val_started = time.monotonic()

    def after_val_epoch(self, runner, metrics=None) -> None:
        seconds = time.monotonic() - self.val_started
        self.val_seconds_since_iter += seconds
        self.metrics = dict(metrics or {})
        self.eval_images_per_s = len(runner.val_dataloader.dataset) / max(seconds, 1e-9)

    @property
    def train_images_per_s(self) -> float | None:
        return self.train_images / self.train_seconds if self.train_seconds > 0 else None


# -- what a config changes ---------------------------------------------------------------------------

def differences(reference, other, key: str = ""):
    """(dotted key, reference value, other value) for each setting that differs. A component whose
    ``type`` changed is one difference, not one per argument; so is a list that gained or lost items
    (a hook left out), given as the items only the reference has and those only the other has."""
    if isinstance(reference, dict) and isinstance(other, dict) and reference.get("type") == other.get("type"):
        found = []
        for name in [*reference, *(k for k in other if k not in reference)]:
            if not name.startswith("_") and not (not key and name in CHANGES_IGNORED):
                found += differences(reference.get(name, _MISSING), other.get(name, _MISSING),
                                     f"{key}.{name}" if key else name)
        arguments = [k for k, _, _ in found if k.count(".") == key.count(".") + 1 and "[" not in k[len(key):]]
        if "type" in reference and len(found) > 1 and len(arguments) == len(found):
            yield key, reference, other  # several arguments of one component: show it whole
        else:
            yield from found
    elif isinstance(reference, (list, tuple)) and isinstance(other, (list, tuple)) and len(reference) == len(other):
        for i, (a, b) in enumerate(zip(reference, other)):
            yield from differences(a, b, f"{key}[{i}]")
    elif isinstance(reference, (list, tuple)) and isinstance(other, (list, tuple)) and (
            removed := [a for a in reference if a not in other]) + (added := [b for b in other if b not in reference]):
        yield key, removed, added
    elif reference != other:
        yield key, reference, other


def describe_value(value, limit: int = 70) -> str:
    if value is _MISSING:
        return "(default)"
    if isinstance(value, dict) and "type" in value:
        text = f"{value['type']}(" + ", ".join(f"{k}={describe_value(v)}" for k, v in value.items() if k != "type") + ")"
    elif isinstance(value, list) and any(isinstance(v, dict) and "type" in v for v in value):
        text = "[" + ", ".join(describe_value(v, limit) for v in value) + "]"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_changes(reference, other) -> list[str]:
    """Readable ``key: old → new`` lines; a change repeated under several keys (a pipeline and the
    dataloader holding it) is named once."""
    lines, seen = [], set()
    for key, old, new in differences(reference.to_dict(), other.to_dict()):
        shown = (describe_value(old), describe_value(new))
        if shown not in seen:
            seen.add(shown)
            lines.append(f"{key}: {shown[0]} → {shown[1]}")
    return lines


def training_key(cfg) -> str:
    """Everything that shapes training: the config without its decoder and per-run names."""
    settings = {k: v for k, v in cfg.to_dict().items() if k not in CHANGES_IGNORED}
    settings["model"] = {k: v for k, v in settings["model"].items() if k != "decoder"}
    return json.dumps(settings, sort_keys=True, default=str)


# -- the sweep -----------------------------------------------------------------------------------------

@dataclass
class Sweep:
    configs: list[str]
    budget: Budget
    out: Path
    seeds: int = 1
    schedule: str = "auto"
    train_data: list[str] | None = None
    val_data: list[str] | None = None
    cfg_options: dict | None = None
    command: str | None = None  # recorded in results.md

    def __post_init__(self):
        self.out = Path(self.out)
        names = [Path(c).stem for c in self.configs]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"configs must have distinct file names (results are kept by name): {repeated}")
        if self.seeds < 1:
            raise ValueError(f"seeds must be at least 1, not {self.seeds}")
        self.cfgs = {name: load_config(path, schedule=self.schedule, cfg_options=self.cfg_options,
                                       train_data=self.train_data, val_data=self.val_data)
                     for name, path in zip(names, self.configs)}
        self.names = names
        for name, cfg in self.cfgs.items():  # a component that is not installed fails now, not hours into the sweep
            MODELS.build(cfg.model)
            metric = METRICS.get(cfg.val_evaluator.get("type"))
            if not (isinstance(metric, type) and issubclass(metric, WordMetric)):
                raise ValueError(f"{name}: the sweep compares word accuracy and 1 - NED (WordMetric), and this config "
                                 f"validates with {cfg.val_evaluator.get('type')}; sweep configs of text recognizers")
        reference = self.cfgs[names[0]]
        self.changes = {name: describe_changes(reference, cfg) for name, cfg in self.cfgs.items()}
        groups: dict[str, list[str]] = {}
        for name, cfg in self.cfgs.items():
            groups.setdefault(training_key(cfg), []).append(name)
        self.groups = list(groups.values())  # configs trained alike, in the order given

    def result_path(self, name: str, seed: int) -> Path:
        return self.out / "runs" / f"{name}__seed{seed}.json"

    def run(self, log=print) -> Path:
        """Train and evaluate every (config, seed) without a result yet; write the report."""
        self._check_budget_of_earlier_runs()
        for name in self.names[1:]:
            if not self.changes[name]:
                log(f"note: {name} is the same as {self.names[0]} under schedule {self.cfgs[name].schedule}")
        for seed in range(self.seeds):
            for group in self.groups:
                todo = [name for name in group if not self.result_path(name, seed).is_file()]
                done = [name for name in group if name not in todo]
                if done:
                    log(f"seed {seed}: {', '.join(done)} finished earlier, not repeated")
                if todo:
                    self._run_group(group, todo, seed, log)
                    write_report(self, log=lambda message: None)  # a table so far, should the sweep stop
        return write_report(self, log)

    def _check_budget_of_earlier_runs(self) -> None:
        for path in sorted((self.out / "runs").glob("*.json")):
            earlier = json.loads(path.read_text())
            if earlier["budget"] != str(self.budget) or earlier["schedule"] != self.cfgs[self.names[0]].schedule:
                raise ValueError(f"{path} was run with budget {earlier['budget']}, schedule {earlier['schedule']}; "
                                 f"this sweep has {self.budget}, schedule {self.cfgs[self.names[0]].schedule}. "
                                 "Use another --out, or the same budget and schedule to resume it.")

    def _run_group(self, group: list[str], todo: list[str], seed: int, log) -> None:
        """Train the group's first config (even if its own result exists: the others must be
        evaluated on the same training), then evaluate every config of ``todo`` on it."""
        trained = group[0]
        cfg = self.run_config(trained, seed)
        log(f"seed {seed}: training {trained} for {self.budget}"
            + (f" (evaluated with the decoders of {', '.join(n for n in todo if n != trained)} too)"
               if todo != [trained] else ""))
        runner = build_runner(cfg)
        recorder = SweepRecorder()
        runner.register_hook(recorder)
        runner.train()
        if recorder.metrics is None:  # no validation at the end (e.g. a val_interval of the config's own)
            runner.val_loop.run()
        model = runner.model
        trained_decoder = model.decoder
        common = dict(seed=seed, budget=str(self.budget), schedule=cfg.schedule, iterations=runner.iter,
                      params=sum(p.numel() for p in model.parameters()),
                      train_images_per_s=recorder.train_images_per_s,
                      val_images=len(runner.val_dataloader.dataset), work_dir=cfg.work_dir)
        for name in todo:
            if name != trained:
                model.decoder = DECODERS.build(self.cfgs[name].model.decoder, default_args=dict(charset=model.charset))
                runner.val_loop.run()
            result = dict(config=name, config_path=str(self.configs[self.names.index(name)]),
                          changes=self.changes[name], trained_with=trained, **common,
                          eval_images_per_s=recorder.eval_images_per_s, metrics=recorder.metrics)
            write_json(self.result_path(name, seed), result)
            log(f"seed {seed}: {name}: word accuracy {result['metrics']['word_acc']:.1%}, "
                f"1-NED {result['metrics']['one_minus_ned']:.3f} after {runner.iter} iterations")
        model.decoder = trained_decoder
        del runner, model
        gc.collect()  # the runner's reference cycles hold its dataloader workers until collected

    def run_config(self, name: str, seed: int):
        """The config of one run: its seed, work dir, budget; one validation, at the end; no checkpoints."""
        cfg = copy.deepcopy(self.cfgs[name])
        cfg.work_dir = str(self.out / "work" / f"{name}__seed{seed}")
        cfg.experiment_name = f"{cfg.experiment_name}_seed{seed}"
        cfg.randomness = dict(seed=seed)
        cfg.test_after_train = False
        cfg.default_hooks.checkpoint = None  # a sweep keeps numbers, not weights
        hooks = [h for h in cfg.get("custom_hooks", []) if h["type"] != "TimeBudgetHook"]
        if self.budget.minutes:
            hooks.append(dict(type="TimeBudgetHook", minutes=self.budget.minutes, validations=1))
        else:
            cfg.param_scheduler = fit_schedulers(cfg.get("param_scheduler") or [], cfg.train_cfg.max_iters,
                                                 self.budget.iters)
            cfg.train_cfg.max_iters = self.budget.iters
        cfg.train_cfg.val_interval = cfg.train_cfg.max_iters  # TimeBudgetHook moves both together
        cfg.custom_hooks = hooks
        return cfg


def fit_schedulers(schedulers, old_max_iters: int, max_iters: int) -> list:
    """LR schedulers for a run cut to ``max_iters``: the ones that ran to the end of training end
    there (a cosine decay still reaches its minimum); ones beginning later are left out."""
    schedulers = [schedulers] if isinstance(schedulers, dict) else list(schedulers)
    fitted = []
    for scheduler in map(dict, schedulers):
        end = refitted_end(scheduler.get("begin", 0), scheduler.get("end", math.inf), old_max_iters, max_iters)
        if end is not None:
            fitted.append(dict(scheduler, end=end))
    return fitted


def write_json(path: Path, data: dict) -> None:
    atomic_write(path, json.dumps(data, indent=1, default=str).encode())  # an interrupted run leaves no half file


# -- the report ----------------------------------------------------------------------------------------

@dataclass
class Row:
    name: str
    runs: list[dict]

    def mean_std(self, key: str) -> tuple[float, float | None]:
        values = [r["metrics"][key] for r in self.runs]
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None

    def mean_of(self, key: str) -> float | None:
        values = [r[key] for r in self.runs if r.get(key) is not None]
        return statistics.fmean(values) if values else None

    def last_loss(self) -> float | None:
        """The training loss at the last logged iteration (mmengine's moving average), from the
        runs' logs; None when the work dirs are gone."""
        values = []
        for run in self.runs:
            try:
                values.append(training_curves(run["work_dir"])[0][-1]["loss"])
            except (FileNotFoundError, IndexError):
                pass
        return statistics.fmean(values) if values else None


def collect_rows(sweep: Sweep) -> list[Row]:
    rows = []
    for name in sweep.names:
        runs = [json.loads(p.read_text()) for seed in range(sweep.seeds)
                if (p := sweep.result_path(name, seed)).is_file()]
        if runs:
            rows.append(Row(name, runs))
    return rows


def write_report(sweep: Sweep, log=print) -> Path:
    """results.md (a Markdown table) and results.png (bar chart) from the run files in OUT/runs."""
    rows = collect_rows(sweep)
    path = sweep.out / "results.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report_markdown(sweep, rows), encoding="utf-8")
    if rows:
        plot_results(rows, sweep.out / "results.png", f"budget {sweep.budget}")
    log(f"wrote {path} ({sum(len(r.runs) for r in rows)} of {len(sweep.names) * sweep.seeds} runs)")
    return path


def _percent(mean: float, std: float | None) -> str:
    return f"{mean:.1%}" + (f" ± {std:.1%}" if std is not None else "")


def _fraction(mean: float, std: float | None) -> str:
    return f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None else "")


def _number(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def report_markdown(sweep: Sweep, rows: list[Row]) -> str:
    first = sweep.cfgs[sweep.names[0]]
    data, val = (describe_value({k: v for k, v in loader.dataset.items() if k not in ("charset", "pipeline")},
                                limit=200) for loader in (first.train_dataloader, first.val_dataloader))
    lines = [
        "# Ablation results", "",
        (f"Every run: {sweep.budget} for training and its evaluation (TimeBudgetHook sets the iterations)"
         if sweep.budget.minutes else f"Every run: {sweep.budget} of training, then one evaluation")
        + f"; schedule `{first.schedule}`.",
        f"Training data: `{data}`.", f"Validation: `{val}`.",
        f"Seeds per config: {sweep.seeds}; accuracy is the mean ± standard deviation over seeds.",
    ]
    if sweep.command:
        lines += ["", "```", sweep.command, "```"]
    lines += ["", "| config | changed (vs the first config) | params | iterations | train images/s | "
                  "eval images/s | last train loss | word accuracy | 1 − NED | seeds |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    shared = False
    for row in rows:
        run = row.runs[0]
        changed = "<br>".join(f"`{c}`" for c in run["changes"]) or ("reference" if row.name == sweep.names[0]
                                                                     else "nothing under this schedule")
        if run["trained_with"] != row.name:
            changed += f" †(trained as {run['trained_with']})"
            shared = True
        lines.append(
            f"| {row.name} | {changed} | {run['params'] / 1e6:.2f}M | {_number(row.mean_of('iterations'))} "
            f"| {_number(row.mean_of('train_images_per_s'))} | {_number(row.mean_of('eval_images_per_s'))} "
            f"| {_number(row.last_loss(), 2)} | {_percent(*row.mean_std('word_acc'))} | {_fraction(*row.mean_std('one_minus_ned'))} "
            f"| {len(row.runs)} |")
    missing = [f"{n} seed {s}" for n in sweep.names for s in range(sweep.seeds)
               if not sweep.result_path(n, s).is_file()]
    if shared:
        lines += ["", "† Only the decoder differs: the model trained for the named config, evaluated with this "
                      "config's decoder (one training per seed for all of them)."]
    if missing:
        lines += ["", f"Not run yet: {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


def plot_results(rows: list[Row], out: Path, title: str) -> Path:
    """Word accuracy and 1 - NED per config, with the standard deviation over seeds as error bars,
    and training images/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 0.45 * len(rows) + 1.4), sharey=True)
    positions = range(len(rows))
    panels = [(row.mean_std("word_acc") for row in rows), (row.mean_std("one_minus_ned") for row in rows),
              ((row.mean_of("train_images_per_s") or 0, None) for row in rows)]
    for ax, stats, label, limit, digits in zip(axes, map(list, panels), ("word accuracy", "1 − NED", "train images/s"),
                                               (1.1, 1.1, None), (3, 3, 0)):
        ax.barh(positions, [m for m, _ in stats], xerr=[s or 0 for _, s in stats], color="#4c78a8", capsize=3)
        for y, (mean, _) in zip(positions, stats):
            ax.text(mean, y, f" {mean:.{digits}f}", va="center", fontsize=8)
        ax.set(xlabel=label)
        ax.set_xlim(0, limit or 1.2 * max([m for m, _ in stats] + [1]))
    axes[0].set_yticks(list(positions), [row.name for row in rows])
    axes[0].invert_yaxis()
    fig.suptitle(f"Ablations ({title})", fontsize=10)
    fig.tight_layout()
    with atomic_output(out) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return out
