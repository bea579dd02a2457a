"""``ProgressBar``: the progress of a compiled loop, updated from inside it.

A loop given ``pbar=`` counts its iterations in its carry and, every ``freq`` iterations, calls
back to the host with ``jax.debug.callback``; the host side draws a tqdm bar (or a plain text
bar when tqdm is not installed). A new bar starts with each run of the loop, so one
``ProgressBar`` serves every call of a compiled program.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class _TextBar:
    """A minimal stand-in for tqdm: ``[#####.....] 50/100 desc`` on standard error."""

    def __init__(self, total: int, desc: str = "", **_: Any):
        self.total, self.n, self.desc = total, 0, desc

    def set_description_str(self, desc: str) -> None:
        self.desc = desc

    def refresh(self) -> None:
        filled = int(20 * self.n / max(self.total, 1))
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (20 - filled)}] {self.n}/{self.total} {self.desc}"
        )
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


def _new_bar(total: int, **kwargs: Any) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _TextBar(total, **kwargs)
    return tqdm(total=total, **kwargs)


class ProgressBar:
    """A progress bar for a compiled loop (``for_loop``, ``scan`` and the checkpointed ones).

    Args:
        freq: update every ``freq`` iterations (default: every 5% of the loop).
        count: update ``count`` times over the loop instead; not with ``freq``.
        desc: the bar's text: a string, or ``(format, fn)`` where ``fn(data)`` returns the
            fields of ``format`` from ``data = {"i": iteration, "carry": ..., "y": ...}``
            (``carry``: a scan's carry, or for ``for_loop`` the values of the states it writes,
            one value when it writes one state; ``y``: the iteration's output).
        **kwargs: passed to ``tqdm`` (e.g. ``leave=False``).

    Raises:
        TypeError: ``freq``/``count`` not ints, ``desc`` of another type.
        ValueError: ``freq`` or ``count`` below 1, or both given.

    Example:
        >>> import jax.numpy as jnp, facade
        >>> bar = facade.transform.ProgressBar(freq=50, disable=True)
        >>> facade.transform.for_loop(lambda x: x ** 2, jnp.arange(100.0), pbar=bar).shape
        (100,)
    """

    graph_opaque = True  # not walked into by facade.graph: no fake state paths

    def __init__(
        self,
        freq: int | None = None,
        count: int | None = None,
        desc: str | tuple[str, Callable[[dict[str, Any]], dict[str, Any]]] | None = None,
        **kwargs: Any,
    ):
        for name, v in (("freq", freq), ("count", count)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise TypeError(f"ProgressBar: {name} must be an int or None, got {v!r}")
            if v is not None and v < 1:
                raise ValueError(f"ProgressBar: {name} must be at least 1, got {v}")
        if freq is not None and count is not None:
            raise ValueError("ProgressBar: give freq or count, not both")
        if desc is not None and not isinstance(desc, str):
            if not (
                isinstance(desc, tuple)
                and len(desc) == 2
                and isinstance(desc[0], str)
                and callable(desc[1])
            ):
                raise TypeError(
                    "ProgressBar: desc must be a str or a (format string, function) pair, "
                    f"got {desc!r}"
                )
        self.freq, self.count, self.desc, self.kwargs = freq, count, desc, kwargs
        self._bars: dict[int, Any] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ProgressBar(freq={self.freq}, count={self.count}, desc={self.desc!r})"

    # Bars with the same settings draw the same: a compiled loop whose callback holds one bar
    # serves a call given another (``pbar=10`` makes a new bar on every call).
    def _settings(self) -> tuple[Any, ...]:
        return (self.freq, self.count, self.desc, tuple(sorted(self.kwargs.items())))

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._settings() == other._settings()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        try:
            return hash(self._settings())
        except TypeError:  # an unhashable tqdm option: no bar equals another
            return id(self)

    def interval(self, total: int) -> int:
        if self.freq is not None:
            return self.freq
        return max(1, total // (self.count or 20))

    # --- host side -----------------------------------------------------------------------

    def _update(self, run: int, total: int, i: Any, carry: Any, y: Any) -> None:
        done = int(i) + 1
        with self._lock:
            bar = self._bars.get(run)
            if bar is None:
                text = self.desc if isinstance(self.desc, str) else ""
                bar = self._bars[run] = _new_bar(total, desc=text, **self.kwargs)
        if isinstance(self.desc, tuple):
            fmt, fields = self.desc
            data = {"i": int(i), "carry": _host(carry), "y": _host(y)}
            bar.set_description_str(fmt.format(**fields(data)))
        bar.n = done
        bar.refresh()
        if done >= total:
            with self._lock:
                self._bars.pop(run, None)
            bar.close()

    # --- traced side ---------------------------------------------------------------------

    def report(self, total: int, i: Any, carry: Any, y: Any) -> None:
        """Inside a loop body: report that iteration ``i`` (traced) of ``total`` is done."""
        every = self.interval(total)
        wants_data = isinstance(self.desc, tuple)
        payload = (carry, y) if wants_data else (None, None)

        def callback(i: Any, carry: Any, y: Any) -> None:
            self._update(id(self), total, i, carry, y)

        due = ((i + 1) % every == 0) | (i + 1 == total) | (i == 0)
        jax.lax.cond(
            due,
            lambda: jax.debug.callback(callback, i, *payload),
            lambda: None,
        )


def _host(tree: Any) -> Any:
    """Scalars as Python numbers (for format strings), other arrays as numpy arrays."""

    def one(x: Any) -> Any:
        a = np.asarray(x)
        return a.item() if a.ndim == 0 else a

    return jax.tree.map(one, tree)


def as_progress_bar(pbar: ProgressBar | int | None) -> ProgressBar | None:
    """``pbar`` as a ProgressBar: an int is an update frequency, as in brainstate."""
    if pbar is None or isinstance(pbar, ProgressBar):
        return pbar
    if isinstance(pbar, int) and not isinstance(pbar, bool):
        return ProgressBar(freq=pbar)
    raise TypeError(f"pbar must be a ProgressBar, an int or None, got {type(pbar).__name__}")


def iteration_counter() -> Any:
    return jnp.zeros((), jnp.int32)
