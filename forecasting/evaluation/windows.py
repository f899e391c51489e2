"""Rolling-origin backtest windows over one regular series."""

from __future__ import annotations

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


def backtest_windows(n_obs: int, horizon: int, n_windows: int, step: int) -> list[Window]:
    """Cutoffs of a rolling-origin backtest, oldest first; the last test window ends at the series' end."""
    windows = []
    for index in range(n_windows):
        train_end = n_obs - horizon - step * (n_windows - 1 - index)
        windows.append(Window(index=index, train_end=train_end, horizon=horizon))
    return windows


def backtest_span(horizon: int, n_windows: int, step: int) -> int:
    """Observations from the first cutoff to the series' end."""
    return horizon + step * (n_windows - 1)
