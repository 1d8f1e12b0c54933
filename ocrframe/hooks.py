"""Runner hooks: the curve plot, the worst-errors grid and the time budget. The CPU recipe's hooks
are in ``recipe.py``, checkpointing's in ``checkpoint.py``."""
from __future__ import annotations

import heapq
import itertools
import logging
import time
from pathlib import Path

import torch
from mmengine.dist import all_gather_object, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from ocrframe.metrics import benchmark_form, normalised_edit_distance
from ocrframe.optim import refitted_end


class CurvePlotHook(Hook):
    """Writes ``curves.png`` (training loss and validation metrics) to the work dir after every
    validation and at the end of training, from the runner's scalar log."""

    priority = "VERY_LOW"

    def __init__(self, metrics=("word_acc", "one_minus_ned"), filename: str = "curves.png"):
        self.metrics, self.filename = tuple(metrics), filename

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._plot(runner)

    def after_train(self, runner) -> None:
        self._plot(runner)

    def _plot(self, runner) -> None:
        from ocrframe.visualize import plot_curves, scalar_logs

        if is_main_process() and scalar_logs(runner.work_dir):  # rank 0 writes the log it reads
            plot_curves(runner.work_dir, Path(runner.work_dir) / self.filename, self.metrics)


class WorstErrorsHook(Hook):
    """After a test, draws the worst misreadings -- the image as the model saw it, the truth and
    the prediction -- to ``worst_errors.png`` in the work dir. Worst = largest normalised edit
    distance, then the most confident. An error is judged as the word accuracy judges it."""

    priority = "VERY_LOW"

    def __init__(self, num: int = 40, filename: str = "worst_errors.png"):
        self.num, self.filename = num, filename
        self._worst: list = []
        self._seen = self._errors = 0
        self._order = itertools.count()

    def before_test_epoch(self, runner) -> None:
        self._worst, self._seen, self._errors = [], 0, 0

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        images, widths = data_batch["inputs"], data_batch["data_samples"]["widths"]
        for image, width, out in zip(images, widths, outputs):
            self._seen += 1
            pred, truth = out["pred"], out["gt"]
            if benchmark_form(pred) == benchmark_form(truth) and not out.get("unreadable"):
                continue
            self._errors += 1
            badness = (normalised_edit_distance(pred, truth), out["score"])
            entry = (badness, next(self._order), image[..., : int(width)].cpu().clone(), truth, pred, out["score"],
                     out.get("key"))
            if len(self._worst) < self.num:
                heapq.heappush(self._worst, entry)
            else:
                heapq.heappushpop(self._worst, entry)

    def after_test_epoch(self, runner, metrics=None) -> None:
        from ocrframe.visualize import GREY, INK, RED, Cell, save_grid, to_pil

        # Each rank tested its share of the set: rank 0 draws the worst over all of them.
        shares = all_gather_object((self._worst, self._seen, self._errors))
        if not is_main_process():
            return
        seen, errors = sum(s[1] for s in shares), sum(s[2] for s in shares)
        worst, keys = [], set()
        # the distributed sampler pads the last share with repeats: count each image once
        for entry in sorted((e for s in shares for e in s[0]), key=lambda e: e[0], reverse=True):
            if entry[-1] is None or entry[-1] not in keys:
                keys.add(entry[-1])
                worst.append(entry)
        worst = worst[: self.num]
        if not worst:
            runner.logger.info(f"no misread image among {seen}: no {self.filename}")
            return
        cells = [Cell(to_pil(image), [(f"truth: {truth}", INK), (f"read:  {pred}", RED), (f"score {score:.2f}", GREY)])
                 for _, _, image, truth, pred, score, _ in worst]
        path = save_grid(cells, Path(runner.work_dir) / self.filename)
        runner.logger.info(f"{self.filename}: the {len(worst)} worst of {errors} misreadings "
                           f"among {seen} test images: {path}")


class TimeBudgetHook(Hook):
    """Sizes an iteration-based run to a wall-clock budget on the machine at hand.

    CPUs differ several-fold in training speed (fast bf16 kernels or not, core count), so a CPU
    schedule fixed in iterations takes 15 minutes on one laptop and 90 on another. This hook times
    iterations ``measure[0]`` to ``measure[1]`` and estimates an evaluation, then sets how many
    iterations fit in ``minutes`` (from the start of training to the end of the final test, with
    ``validations`` validations), the validation and checkpoint intervals, and the end of every LR
    scheduler that runs until the end of training (e.g. a cosine decay after a fixed warm-up).
    It plans again after each validation with the measured evaluation time (a new interval counts
    from the last validation: the loop's ``val_from``), and every ``replan``
    of the planned iterations, each time at the pace of the iterations since the plan before the
    last: a curriculum makes iterations costlier as it goes (the OMR run's went from 0.6 to 1.4 s),
    so the early ones underestimate the rest, while a single window's pace swings with the data
    (0.64-0.94 s between windows of 100 iterations in `make train`). The plan is logged and kept in the
    message hub; the clocks are saved in checkpoints (``state_dict``), so a resumed run goes on
    measuring and planning where the interrupted one was (time between the two is not counted).

    The config's ``max_iters`` is the upper bound; the plan never exceeds it, and the log says
    when it ends the run before the budget does.
    """

    priority = "VERY_HIGH"
    PACE_WINDOWS = 2  # the pace is measured over the iterations of this many plans
    EVAL_WIDTH_FACTOR = 1.5  # evaluation keeps the aspect ratio: images are wider than in training

    def __init__(self, minutes: float, validations: int = 5, measure: tuple[int, int] = (10, 30),
                 margin: float = 0.03, replan: float = 0.05):
        if not 0 < measure[0] < measure[1]:
            raise ValueError(f"measure must be two iterations 0 < start < end, not {measure}")
        if not 0 < replan <= 1:
            raise ValueError(f"replan must be a share of the planned iterations in (0, 1], not {replan}")
        self.budget = minutes * 60.0
        self.validations, self.measure, self.margin, self.replan = validations, tuple(measure), margin, replan

    def before_train(self, runner) -> None:
        if not hasattr(runner.train_loop, "val_from"):
            raise ValueError(f"TimeBudgetHook plans the validations of a ResumableIterBasedTrainLoop, not of "
                             f"{type(runner.train_loop).__name__}: set train_cfg's type='ResumableIterBasedTrainLoop'")
        now = time.monotonic()
        self.started = now
        self.upper_bound = runner.train_loop.max_iters
        self.eval_seconds = 0.0         # spent in validations since measure[0]
        self.seconds_per_sample = None  # of an evaluation, once one has been timed
        self.window_start = self.window_iter = None  # when timing began, and at which iteration
        self.plan_points = []  # (when, iteration, eval_seconds) of the last PACE_WINDOWS plans
        self.per_iter = None     # seconds per training iteration it planned with
        self.last_validated = 0  # the iteration of the last validation (0: none yet)
        self.told_capped = False  # whether the log said that max_iters ends the run before the budget
        self.active = runner.train_loop.max_iters > self.measure[1]  # a run this short needs no plan
        state, self._restored = getattr(self, "_restored", None), None
        plan = runner.message_hub.get_info("time_budget_plan")
        if state is not None:  # resumed with this hook's clocks: go on as if never interrupted
            self.started = now - state["elapsed"]
            if state["window"] is not None:
                self.window_start, self.window_iter = now - state["window"], state["window_iter"]
            points = state.get("plan_points") or ([state["last_plan"]] if state.get("last_plan") else [])
            if points:  # (checkpoints from before re-planning have none; those until 2026-12-04, one)
                self.plan_points = [(now - since, iteration, eval_seconds) for since, iteration, eval_seconds in points]
                self.per_iter = state["per_iter"]
            self.upper_bound, self.active = state["upper_bound"], state["active"]
            self.eval_seconds, self.seconds_per_sample = state["eval_seconds"], state["seconds_per_sample"]
            self.last_validated = state.get("last_validated", 0)  # kept in checkpoints since 2026-12-08
        elif plan is not None:  # resumed from a checkpoint without them: keep the plan it was started with
            self.active = False
            print_log(f"time budget: keeping the plan of {plan['max_iters']} iterations", logger=runner.logger)
        if plan is not None:
            self._apply(runner, plan)

    def state_dict(self) -> dict:
        """Durations rather than clock readings, which mean nothing in another process."""
        now = time.monotonic()
        return dict(elapsed=now - self.started, window=None if self.window_start is None else now - self.window_start,
                    window_iter=self.window_iter, upper_bound=self.upper_bound, active=self.active,
                    eval_seconds=self.eval_seconds, seconds_per_sample=self.seconds_per_sample,
                    plan_points=[(now - when, *rest) for when, *rest in self.plan_points], per_iter=self.per_iter,
                    last_validated=self.last_validated)

    def load_state_dict(self, state: dict) -> None:
        self._restored = state  # applied in before_train, which would reset it otherwise

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if not self.active:
            return
        done = runner.iter + 1
        if self.window_start is None and done >= self.measure[0]:
            self.window_start, self.window_iter = time.monotonic(), done
        elif self.window_start is not None and done - self.window_iter == self.measure[1] - self.measure[0]:
            self._estimate_evaluation(runner, data_batch)
            self._plan(runner, done=done)
        elif self.plan_points and done < runner.train_loop.max_iters and \
                done - self.plan_points[-1][1] >= max(self.measure[1] - self.measure[0],
                                                int(self.replan * runner.train_loop.max_iters)):
            self._plan(runner, done=done)

    def before_val_epoch(self, runner) -> None:
        self.val_started = time.monotonic()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.last_validated = runner.iter
        if not self.active or self.window_start is None or runner.iter < self.measure[1]:
            return
        seconds = time.monotonic() - self.val_started
        self.eval_seconds += seconds
        self.seconds_per_sample = seconds / max(len(runner.val_dataloader.dataset), 1)
        if runner.iter < runner.train_loop.max_iters:
            self._plan(runner, done=runner.iter)

    def _estimate_evaluation(self, runner, data_batch) -> None:
        """Seconds per evaluated sample, until an evaluation is timed: the model's forward pass on a
        training batch (the faster of two, as the first in a process also sets up its kernels), or
        loading the validation samples where that is slower. The OMR validation engraves each
        snippet in its loader's workers, which share the cores with the forward pass (the forward
        pass alone planned the OMR run with 9.9 ms per image, and its first validation took 68.5)."""
        runner.model.eval()  # so batch norm statistics are left alone
        seconds = []
        for _ in range(2):
            start = time.monotonic()
            with torch.no_grad():
                runner.model.val_step(data_batch)
            seconds.append(time.monotonic() - start)
        batch_size = len(data_batch["inputs"]) if isinstance(data_batch, dict) else 1
        forward = min(seconds) / batch_size * self.EVAL_WIDTH_FACTOR
        runner.model.train()
        loader = runner.val_dataloader
        load = self._loading_seconds(loader.dataset) if loader is not None else 0.0
        workers = max(1, getattr(loader, "num_workers", 0))
        self.seconds_per_sample = max(forward, load / workers, (forward + load) / torch.get_num_threads())

    @staticmethod
    def _loading_seconds(dataset, samples: int = 3) -> float:
        """Seconds to load one sample of ``dataset`` here: the mean of ``samples`` after a first,
        which may set things up."""
        times = []
        for index in range(min(samples + 1, len(dataset))):
            start = time.monotonic()
            dataset[index]
            times.append(time.monotonic() - start)
        later = times[1:] or times
        return sum(later) / len(later) if later else 0.0

    def _plan(self, runner, done: int) -> None:
        """Choose max_iters and the validation interval to end within the budget, ``done`` iterations
        in, at the pace of the iterations since the plan before the last."""
        now, first_plan = time.monotonic(), self.per_iter is None
        planned_interval = None if first_plan else runner.train_loop.val_interval
        since, first, eval_seconds = (self.plan_points or [(self.window_start, self.window_iter, 0.0)])[0]
        if done - first >= self.measure[1] - self.measure[0]:
            self.per_iter = (now - since - (self.eval_seconds - eval_seconds)) / (done - first)
            self.plan_points = [*self.plan_points, (now, done, self.eval_seconds)][-self.PACE_WINDOWS:]
        per_iter = self.per_iter  # too few iterations since then: the pace planned with before
        val_samples = len(runner.val_dataloader.dataset) if runner.val_dataloader is not None else 0
        test_samples = len(runner.test_dataloader.dataset) if runner.cfg.get("test_after_train") else 0
        left = self.budget * (1 - self.margin) - (now - self.started)
        max_iters = self.upper_bound
        for _ in range(3):  # the interval and the validations left depend on max_iters: settle them
            interval = self._interval(max_iters, planned_interval)
            evaluations = -(-(max_iters - done) // interval) * val_samples + test_samples
            fit = done + int(max(left - evaluations * self.seconds_per_sample, 0) / per_iter)
            max_iters = max(done + 1, min(self.upper_bound, fit))
        if fit > self.upper_bound and not self.told_capped:
            self.told_capped = True
            unused = (fit - self.upper_bound) * per_iter / 60
            print_log(f"time budget: {fit} iterations would fit in {self.budget / 60:g} min, but the config's "
                      f"train_cfg.max_iters ({self.upper_bound}) ends the run about {unused:.0f} min early; "
                      f"raise train_cfg.max_iters to train for the whole budget",
                      logger=runner.logger, level=logging.WARNING)
        interval = self._interval(max_iters, planned_interval)
        # Validations are counted from the last one (the loop's val_from), so a new interval puts the
        # next a whole interval after it; where that is already behind (a plan that shrank the
        # interval), the next comes at once rather than one more interval later.
        loop = runner.train_loop
        last = max(self.last_validated, done + 1 - interval)
        multiples = (max_iters - last) // interval
        if multiples and 0 < (max_iters - last) % interval < interval // 3:
            interval = -(-(max_iters - last) // multiples)  # no validation just before the final one: stretch
        previous, previous_interval = loop.max_iters, loop.val_interval
        plan = dict(max_iters=max_iters, val_interval=interval, val_from=last)
        self._rescale_schedulers(runner, max_iters)
        self._apply(runner, plan)
        runner.message_hub.update_info("time_budget_plan", plan)
        if first_plan:
            print_log(f"time budget {self.budget / 60:g} min: {per_iter:.2f} s per iteration here, so training runs "
                      f"{max_iters} iterations, validating every {interval}", logger=runner.logger)
        elif abs(max_iters - previous) >= max(1, previous // 100):  # re-plans that change little stay quiet
            validating = f", validating every {interval}" if interval != previous_interval else ""
            print_log(f"time budget: {per_iter:.2f} s per iteration lately and {self.seconds_per_sample * 1000:.1f} ms "
                      f"per evaluated image: {max_iters} iterations instead of {previous}{validating}",
                      logger=runner.logger)
        if first_plan and max_iters <= done + 1:
            print_log("time budget: this machine is too slow to train in the budget; raise `minutes` or use a "
                      "GPU", logger=runner.logger, level=logging.WARNING)

    def _interval(self, max_iters: int, planned: int | None) -> int:
        """``validations`` evenly over ``max_iters``. A plan that moves by a quarter or more moves
        the interval with it (a run planned short on a busy machine and then long would otherwise
        validate several times as often as asked); smaller moves keep it, so the validations of a
        steady run stay evenly spaced."""
        interval = max(1, max_iters // max(self.validations, 1))
        return planned if planned and abs(interval - planned) < planned / 4 else interval

    def _rescale_schedulers(self, runner, max_iters: int) -> None:
        """End every scheduler that runs to the end of training at ``max_iters``. A cosine decay that
        has begun goes on from its current value and still reaches its minimum there (mmengine
        computes it step by step from the previous value)."""
        schedulers = runner.param_schedulers or []
        if isinstance(schedulers, dict):
            schedulers = [s for group in schedulers.values() for s in group]
        for scheduler in schedulers:
            end = refitted_end(scheduler.begin, scheduler.end, runner.train_loop.max_iters, max_iters)
            if end is None:
                print_log(f"time budget: {type(scheduler).__name__} begins at iteration {scheduler.begin}, after "
                          f"the {max_iters} iterations that fit; shorten the warm-up", logger=runner.logger,
                          level=logging.WARNING)
            elif end != scheduler.end:
                scheduler.end = end
                if hasattr(scheduler, "T_max"):
                    scheduler.T_max = end - scheduler.begin

    @staticmethod
    def _apply(runner, plan: dict) -> None:
        from mmengine.hooks import CheckpointHook

        loop = runner.train_loop
        loop._max_iters = plan["max_iters"]
        loop.val_interval, loop.dynamic_intervals = plan["val_interval"], [plan["val_interval"]]
        loop.val_from = plan.get("val_from", 0)  # plans kept in checkpoints until 2026-12-08 counted from 0
        for hook in runner.hooks:
            if isinstance(hook, CheckpointHook) and not hook.by_epoch:  # a checkpoint at each validation
                hook.interval, hook.save_begin = plan["val_interval"], loop.val_from

