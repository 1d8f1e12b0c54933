"""TimeBudgetHook's plans over a whole run of thousands of iterations, on a simulated clock: the
hook driven as mmengine's iteration loop drives it (after each iteration, around each validation),
without a model, so a 27-minute run takes milliseconds."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from ocrframe import hooks as engine
from ocrframe.hooks import TimeBudgetHook
from ocrframe.loops import validates_at


class Clock:
    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class Loop:
    """What the hook reads and sets of ResumableIterBasedTrainLoop."""

    val_from = 0

    def __init__(self, max_iters: int):
        self._max_iters, self.val_interval, self.dynamic_intervals, self.iter = max_iters, 1000, [1000], 0
        self.val_begin, self.runner = 1, SimpleNamespace(val_loop=True)

    @property
    def max_iters(self) -> int:
        return self._max_iters


class Runner(SimpleNamespace):
    @property
    def iter(self) -> int:
        return self.train_loop.iter


def simulate(monkeypatch, pace, validation_seconds: float, minutes: float, validations: int):
    """Train until the plan's end: ``pace(iteration)`` seconds per iteration, a validation where
    mmengine's loop would run one. Returns the validated iterations, the minutes taken and the last interval."""
    clock = Clock()
    monkeypatch.setattr(engine, "time", clock)
    loop, info = Loop(100_000), {}
    runner = Runner(train_loop=loop, val_dataloader=SimpleNamespace(dataset=range(100)), cfg={}, logger=None,
                    message_hub=SimpleNamespace(get_info=info.get, update_info=info.__setitem__),
                    param_schedulers=[], hooks=[],
                    model=SimpleNamespace(eval=lambda: None, train=lambda: None, val_step=lambda batch: None))
    hook = TimeBudgetHook(minutes=minutes, validations=validations)
    hook.before_train(runner)
    validated = []
    while loop.iter < loop.max_iters:
        clock.now += pace(loop.iter)
        hook.after_train_iter(runner, loop.iter, data_batch={"inputs": [0] * 8})
        loop.iter += 1
        if validates_at(loop, loop.iter):
            hook.before_val_epoch(runner)
            clock.now += validation_seconds
            hook.after_val_epoch(runner)
            validated.append(loop.iter)
    return validated, (clock.now - 1000.0) / 60, loop.val_interval


# Iterations that grow costlier over the first 2000 (a curriculum), as in `make train` and the OMR run,
# where a re-plan right after a validation stretched the intervals and validated again 14 iterations
# later (3134, then 3148).
@pytest.mark.parametrize("first,later", [(0.25, 0.28), (0.25, 0.31), (0.30, 0.34)])
def test_no_validation_comes_right_after_another(monkeypatch, first, later):
    validated, minutes, interval = simulate(monkeypatch, lambda i: first + (later - first) * min(1.0, i / 2000),
                                            validation_seconds=20.0, minutes=27, validations=6)
    gaps = [b - a for a, b in zip(validated, validated[1:])]
    assert min(gaps) >= interval // 3, validated
    assert 5 <= len(validated) <= 7, validated
    assert 0.95 * 27 <= minutes <= 27, minutes  # the budget is used, not overrun


# A machine that gets faster midway (another job ends): the plan grows, and the interval with it.
# Counted from iteration 0, the first validation at the new interval came 360 iterations after the
# last (1048, then 1408, with 524 and then 704 between the others) and 283 after it in the second case.
@pytest.mark.parametrize("slow,fast,from_iteration", [(0.5, 0.25, 1000), (0.6, 0.2, 1500)])
def test_a_new_interval_is_counted_from_the_last_validation(monkeypatch, slow, fast, from_iteration):
    validated, minutes, interval = simulate(monkeypatch, lambda i: slow if i < from_iteration else fast,
                                            validation_seconds=20.0, minutes=27, validations=6)
    gaps = [b - a for a, b in zip(validated, validated[1:])]
    assert gaps[:-1] == sorted(gaps[:-1]) and gaps[-2] == interval, validated  # the last gap ends the run
    assert gaps[-1] >= interval // 3, validated
    assert 0.95 * 27 <= minutes <= 27, minutes


# A machine that slows down (another job starts; the OMR run's curriculum, 0.19 -> 0.32 s): the plan
# shrinks, and the interval with it, below the iterations since the last validation. Counted from a
# validation point that never ran, the first due validation was skipped: 2 of the 3 asked (2790 and
# the end 3662; the OMR run of 2026-12-08 validated at 3405 and 4932 only).
@pytest.mark.parametrize("fast,slow,from_iteration", [(0.2, 0.5, 1000), (0.2, 0.6, 1500)])
def test_a_validation_that_falls_behind_comes_at_once(monkeypatch, fast, slow, from_iteration):
    validated, minutes, interval = simulate(monkeypatch, lambda i: fast if i < from_iteration else slow,
                                            validation_seconds=20.0, minutes=27, validations=3)
    gaps = [b - a for a, b in zip([0, *validated], validated)]
    assert len(validated) == 3 and min(gaps) >= interval // 3, validated
    assert 0.95 * 27 <= minutes <= 27, minutes


def test_the_evaluation_estimate_leaves_out_the_first_passes_set_up(monkeypatch):
    """The first forward pass in a process also sets up its kernels: the estimate of an evaluated
    image's cost comes from the faster of two passes."""
    clock = Clock()
    monkeypatch.setattr(engine, "time", clock)
    pass_seconds = iter([3.0, 1.0])

    def val_step(batch):
        clock.now += next(pass_seconds)

    model = SimpleNamespace(eval=lambda: None, train=lambda: None, val_step=val_step)
    hook = TimeBudgetHook(minutes=1)
    hook._estimate_evaluation(SimpleNamespace(model=model, val_dataloader=None), {"inputs": [0] * 4})
    assert hook.seconds_per_sample == 1.0 / 4 * TimeBudgetHook.EVAL_WIDTH_FACTOR


@pytest.mark.parametrize("workers,threads", [(2, 2), (4, 8)])
def test_the_evaluation_estimate_counts_loading_where_it_costs_more_than_the_forward_pass(monkeypatch, workers,
                                                                                         threads):
    """A validation set whose samples cost more to load than to read (OMR's are engraved): on two
    cores the loading workers and the forward pass share them; with workers and cores to spare,
    the forward pass alone sets the pace."""
    clock = Clock()
    monkeypatch.setattr(engine, "time", clock)
    monkeypatch.setattr(engine.torch, "get_num_threads", lambda: threads)

    class Engraved:
        loads = iter([2.0] + [1.2] * 10)  # the first sets up the engraver

        def __len__(self):
            return 100

        def __getitem__(self, index):
            clock.now += next(self.loads)

    def val_step(batch):
        clock.now += 1.0

    model = SimpleNamespace(eval=lambda: None, train=lambda: None, val_step=val_step)
    runner = SimpleNamespace(model=model, val_dataloader=SimpleNamespace(dataset=Engraved(), num_workers=workers))
    hook = TimeBudgetHook(minutes=1)
    hook._estimate_evaluation(runner, {"inputs": [0] * 4})
    forward = 1.0 / 4 * TimeBudgetHook.EVAL_WIDTH_FACTOR
    expected = (forward + 1.2) / threads if threads == 2 else forward
    assert hook.seconds_per_sample == pytest.approx(expected)



def test_a_loop_that_cannot_count_from_the_last_validation_is_named_with_the_fix():
    """mmengine's own loop validates at multiples of the interval only: the hook's plans would not hold."""
    loop = SimpleNamespace(max_iters=1000, val_interval=100)  # no val_from
    with pytest.raises(ValueError, match="not of SimpleNamespace: set train_cfg's type='ResumableIterBasedTrainLoop'"):
        TimeBudgetHook(minutes=1).before_train(SimpleNamespace(train_loop=loop))
