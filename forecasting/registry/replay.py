"""A registered version's forecasts from an earlier cutoff: its bundle refitted on the history up to it."""

from __future__ import annotations

import pandas as pd

from forecasting.data.contract import ID
from forecasting.registry.bundle import BundleForecaster


def truncate(history: pd.DataFrame, cutoffs: pd.Series) -> pd.DataFrame:
    """Each series' history up to its own cutoff (series without a cutoff are left out)."""
    frame = history.assign(unique_id=history[ID].astype(str))
    limit = frame[ID].map(cutoffs)
    return frame[limit.notna() & (frame["ds"] <= limit)].reset_index(drop=True)


def replay(forecaster: BundleForecaster, history: pd.DataFrame, cutoffs: pd.Series, horizon: int
           ) -> tuple[pd.DataFrame, dict[str, str]]:
    """The version's forecasts of each series from its cutoff (rows with a ``cutoff`` column), and the
    series whose whole fallback chain failed (id -> why)."""
    failures: dict[str, str] = {}
    cut = truncate(history, cutoffs)
    if cut.empty:
        return pd.DataFrame(), failures
    rows = forecaster.forecast(cut, horizon, failures)
    return rows.assign(cutoff=rows[ID].map(cutoffs)), failures
