"""The forecast rows of the data contract: one per series and horizon step.

Training (a shard's published rows) and serving (a bundle's forecasts) build them here:
``unique_id``, ``ds`` (the periods after the series' origin, on the grid of ``freq``),
``horizon``, one column per quantile, then one column per series-level label (``model``,
``status``, ...). Built with array operations over all series at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from forecasting.data.contract import ID, TIME, quantile_label


def forecast_rows(
    ids: Sequence[str],
    origins: Sequence[object],
    forecasts: Sequence[Mapping[float, np.ndarray]],
    quantiles: Sequence[float],
    horizon: int,
    freq: str,
    **labels: Sequence[str],
) -> pd.DataFrame:
    """Rows of the series ``ids`` in that order: from each origin (its last period) and forecast,
    and per series one value of each of ``labels`` (a column each, after the quantiles)."""
    if not ids:
        return pd.DataFrame(columns=forecast_columns(quantiles, *labels))
    future: dict[pd.Timestamp, pd.DatetimeIndex] = {}  # the series of a run share their origin: one date range each
    dates = []
    for origin in map(pd.Timestamp, origins):
        if origin not in future:
            future[origin] = pd.date_range(origin, periods=horizon + 1, freq=freq)[1:]
        dates.append(future[origin])
    frame = pd.DataFrame({
        ID: np.repeat(np.array(list(ids), dtype=object), horizon),
        TIME: dates[0].append(dates[1:]) if len(dates) > 1 else dates[0],
        "horizon": np.tile(np.arange(1, horizon + 1, dtype=np.int64), len(ids)),
    })
    for q in quantiles:
        frame[quantile_label(q)] = np.concatenate([np.asarray(forecast[q], dtype=np.float64) for forecast in forecasts])
    for name, values in labels.items():
        frame[name] = np.repeat(np.array(list(values), dtype=object), horizon)
    return frame


def forecast_columns(quantiles: Sequence[float], *labels: str) -> list[str]:
    """The columns of ``forecast_rows`` (for an empty frame)."""
    return [ID, TIME, "horizon", *(quantile_label(q) for q in quantiles), *labels]
