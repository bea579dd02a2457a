"""Timing helpers: interleaved rounds, median per-call times, paired ratios, RSS.

Every contender is a zero-argument callable returning a pytree of arrays. A contender is warmed
up (compiled) before anything is timed; then, round by round, every contender runs ``inner``
calls back to back (each call blocked until its outputs are ready), in an order rotated by one
each round so that none always runs first or last. Rounds are short (a few milliseconds per
contender) and many. A round's per-call time is its elapsed time
divided by ``inner``. We report the median over rounds and, for the ratio to the reference
(raw JAX), the median of the per-round ratios: both contenders of a pair ran in the same round,
so slow phases of a shared, loaded machine cancel out of the ratio. As ``timeit`` does, the
cyclic garbage collector is off while rounds are timed (it runs before), so that a collection
of objects left by earlier cases is not charged to whichever contender triggers it.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax

Contender = Callable[[], Any]


@dataclass
class Stats:
    """Per-call times (seconds) of one contender, one entry per round it took part in."""

    first_call: float = float("nan")
    samples: dict[int, float] = field(default_factory=dict)  # round -> per-call seconds
    error: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.samples.values()) if self.samples else float("nan")

    @property
    def best(self) -> float:
        return min(self.samples.values()) if self.samples else float("nan")

    def ratio_to(self, ref: Stats) -> float:
        """Median over shared rounds of (this round's time / the reference's same-round time)."""
        shared = [r for r in self.samples if r in ref.samples]
        if not shared:
            return float("nan")
        return statistics.median(self.samples[r] / ref.samples[r] for r in shared)

    def best_ratio_to(self, ref: Stats) -> float:
        """Ratio of the best (minimum) per-call times: the least disturbed by other load."""
        return self.best / ref.best if self.samples and ref.samples else float("nan")


def _call(fn: Contender) -> None:
    jax.block_until_ready(fn())


def _estimate(fn: Contender, first_call: float) -> float:
    """Per-call time after the first call: the median of 3 calls, or one call when the first
    took over a second (a long compile, or op-by-op eager autodiff of many states)."""
    times = []
    for _ in range(1 if first_call > 1.0 else 3):
        t0 = time.perf_counter()
        _call(fn)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def interleaved(
    contenders: dict[str, Contender],
    *,
    min_rounds: int,
    max_rounds: int,
    time_budget: float,
    round_target: float = 0.002,
    max_inner: int = 100,
    slow_round: float = 0.05,
    slow_budget: float = 8.0,
    on_error: Callable[[str, BaseException], None] | None = None,
) -> dict[str, Stats]:
    """Time ``contenders`` interleaved; return their :class:`Stats`.

    Rounds are short (about ``round_target`` seconds per contender) and many, so the two sides
    of a ratio are measured milliseconds apart; they go on until ``time_budget`` seconds have
    passed (at least ``min_rounds``, at most ``max_rounds``).

    Args:
        contenders: name -> zero-argument callable.
        min_rounds, max_rounds, time_budget: how many rounds (see above).
        round_target: seconds each contender should spend per round (sets ``inner``).
        max_inner: upper bound on calls per round.
        slow_round, slow_budget: a contender needing more than ``slow_round`` seconds per round
            (e.g. op-by-op eager autodiff of a thousand states) takes part only in the first
            rounds, spending about ``slow_budget`` seconds (never fewer than 3 rounds); the
            time budget counts the others only.
        on_error: called with (name, exception) when a contender fails; it is then dropped.
            Without it, the exception propagates.
    """
    stats = {name: Stats() for name in contenders}
    inner: dict[str, int] = {}
    cap: dict[str, int] = {}
    live = dict(contenders)
    for name, fn in list(live.items()):
        try:
            gc.collect()
            t0 = time.perf_counter()
            _call(fn)  # compile
            stats[name].first_call = time.perf_counter() - t0
            per_call = _estimate(fn, stats[name].first_call)
        except Exception as err:  # noqa: BLE001 - reported, not hidden
            if on_error is None:
                raise
            on_error(name, err)
            stats[name].error = f"{type(err).__name__}: {err}"
            del live[name]
            continue
        inner[name] = max(1, min(max_inner, round(round_target / max(per_call, 1e-9))))
        per_round = per_call * inner[name]
        # a contender slower than ``slow_round`` per round takes part in the first rounds only
        cap[name] = max_rounds if per_round <= slow_round else max(3, int(slow_budget / per_round))
    names = list(live)
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # as timeit does: a collection of unrelated objects is no contender's cost
    try:
        return _rounds(live, names, stats, inner, cap, min_rounds, max_rounds, time_budget)
    finally:
        if gc_was_enabled:
            gc.enable()


def _rounds(
    live: dict[str, Contender],
    names: list[str],
    stats: dict[str, Stats],
    inner: dict[str, int],
    cap: dict[str, int],
    min_rounds: int,
    max_rounds: int,
    time_budget: float,
) -> dict[str, Stats]:
    spent = 0.0  # time spent in the contenders that take part in every round
    r = 0
    while r < max_rounds and (r < min_rounds or spent < time_budget):
        shift = r % max(1, len(names))
        for name in names[shift:] + names[:shift]:
            if r >= cap[name]:
                continue
            fn, n = live[name], inner[name]
            t0 = time.perf_counter()
            for _ in range(n):
                jax.block_until_ready(fn())
            elapsed = time.perf_counter() - t0
            stats[name].samples[r] = elapsed / n
            if cap[name] == max_rounds:
                spent += elapsed
        r += 1
    return stats


def first_calls(
    factories: dict[str, Callable[[], Contender]],
    rounds: int,
    on_error: Callable[[str, BaseException], None] | None = None,
) -> tuple[dict[str, Stats], dict[str, Contender]]:
    """Time the first call of fresh contenders, interleaved, ``rounds`` times.

    ``factories[name]()`` builds a fresh contender (new function objects, new states; not
    timed) whose first call builds the transform, traces and compiles. Fresh objects are
    enough for nothing to be reused: ``jax.clear_caches()`` between calls made no measurable
    difference, and without it the contenders of the last round stay compiled, so they are
    returned for the steady-state timing of the same case.
    """
    stats = {name: Stats() for name in factories}
    last: dict[str, Contender] = {}
    names = list(factories)
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            if stats[name].error is not None:
                continue
            try:
                fn = factories[name]()
                gc.collect()
                t0 = time.perf_counter()
                _call(fn)
                stats[name].samples[r] = time.perf_counter() - t0
                last[name] = fn
            except Exception as err:  # noqa: BLE001
                if on_error is None:
                    raise
                on_error(name, err)
                stats[name].error = f"{type(err).__name__}: {err}"
    return stats, last


def rss_kib() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process in KiB, from /proc/self/status (Linux)."""
    rss = hwm = -1
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        import resource

        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return rss, hwm
