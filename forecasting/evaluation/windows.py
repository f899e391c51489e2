"""Rolling-origin backtest windows over one regular series."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """Train on ``y[:train_end]``, score on ``y[train_end:train_end + horizon]``."""

    index: int
    train_end: int
    horizon: int

    @property
    def test_slice(self) -> slice:
        return slice(self.train_end, self.train_end + self.horizon)


def backtest_windows(n_obs: int, horizon: int, n_windows: int, step: int, min_train: int = 1) -> list[Window]:
    """Cutoffs of a rolling-origin backtest, oldest first; the last test window ends at the series' end.

    At most ``n_windows``; a window whose training part would be shorter than ``min_train``
    is left out (so a short series gets fewer windows, possibly none).
    """
    ends = [n_obs - horizon - step * k for k in range(n_windows)]
    kept = [end for end in ends if end >= max(1, min_train)][::-1]
    return [Window(index=i, train_end=end, horizon=horizon) for i, end in enumerate(kept)]


def min_train_length(n_obs: int, share: float, floor: int) -> int:
    """Shortest training part a window of a series of ``n_obs`` may have: ``share`` of it, at least ``floor``.

    A window trained on a small fraction of the history says little about a model fitted on
    all of it, and its larger errors would widen every calibrated interval.
    """
    return max(int(floor), math.ceil(share * n_obs))


def window_lag(horizon: int, step: int) -> int:
    """Windows between a scored window and the latest earlier one whose actuals were known at its cutoff."""
    return max(1, math.ceil(horizon / step))


def backtest_span(horizon: int, n_windows: int, step: int) -> int:
    """Observations from the first cutoff to the series' end."""
    return horizon + step * (n_windows - 1)
