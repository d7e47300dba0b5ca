"""The search over which models run on the candidate, apart from running anything.

Like Polygraphy's bisect marker, ``SwapSearch`` only proposes (``current``) and listens
(``step(passed)``), and says ``stop()`` / ``remaining()``; it is driven by any pass/fail function,
so it is tested with a fake one. Its order is the guide's method:

1. every model alone on the candidate (``swap_in``); the models whose swap fails are the culprits;
2. when no single swap fails (but the all-candidate pipeline does), combinations of increasing size
   until the smallest failing one is found. Size N (all models) is known to fail and is not re-tried.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

Combination = tuple[str, ...]


@dataclass
class SwapSearch:
    """Proposes model sets to put on the candidate; ``step(passed)`` answers for ``current``.

    ``all_fails`` says whether the all-candidate pipeline failed (by the same rule that ``step``'s
    answers use: bisect counts only failures beyond the reference's own noise); when it did not,
    only the single swaps are tried (for the record) and no combination search follows.
    """

    models: Sequence[str]
    all_fails: bool = True
    max_size: int | None = None
    tried: dict[Combination, bool] = field(default_factory=dict)
    _queue: list[Combination] = field(default_factory=list, init=False)
    _size: int = field(default=1, init=False)
    _done: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.models = list(self.models)
        self._queue = [(m,) for m in self.models]
        self._done = not self.models
        if self.max_size is None:
            self.max_size = max(len(self.models) - 1, 1)

    @property
    def current(self) -> Combination | None:
        """The combination to try next (``None`` once stopped)."""
        return None if self.stop() else self._queue[0]

    def step(self, passed: bool) -> None:
        """Record the outcome of ``current`` and move on."""
        if self.stop():
            raise RuntimeError("the search has stopped; nothing to step")
        combo = self._queue.pop(0)
        self.tried[combo] = bool(passed)
        if self._size > 1 and not passed:
            self._done = True  # the first failing combination of the smallest size: done
            return
        if not self._queue:
            self._advance()

    def _advance(self) -> None:
        if self.culprits or not self.all_fails or self._size >= self.max_size:
            self._done = True
            return
        self._size += 1
        self._queue = list(combinations(self.models, self._size))

    def stop(self) -> bool:
        return self._done

    def remaining(self) -> int:
        """How many combinations are left at most (this size and the larger ones still possible)."""
        if self.stop():
            return 0
        left = len(self._queue)
        if self.all_fails and not self.culprits:
            left += sum(_n_choose_k(len(self.models), k) for k in range(self._size + 1, self.max_size + 1))
        return left

    @property
    def culprits(self) -> list[str]:
        """Models whose single swap failed, in pipeline order."""
        return [combo[0] for combo, passed in self.tried.items() if len(combo) == 1 and not passed]

    @property
    def smallest_failing(self) -> Combination | None:
        """The smallest failing combination: a failing single, a failing larger set, or (when every
        smaller one passed and the all-candidate pipeline fails) all models together."""
        failing = [combo for combo, passed in self.tried.items() if not passed]
        if failing:
            return min(failing, key=len)
        if self.stop() and self.all_fails and self.models:
            return tuple(self.models)
        return None


def search(models: Sequence[str], passes: Callable[[Combination], bool], *, all_fails: bool = True) -> SwapSearch:
    """Drive a ``SwapSearch`` to the end with ``passes(combination)``; returns the finished search."""
    marker = SwapSearch(models, all_fails=all_fails)
    while not marker.stop():
        marker.step(passes(marker.current))
    return marker


def _n_choose_k(n: int, k: int) -> int:
    from math import comb

    return comb(n, k)
