"""Forecast losses and benchmark scoring, following the M4, Chronos and fev definitions.

- Pinball loss ``rho_q(y, f) = max(q (y - f), (q - 1)(y - f))``.
- MASE scales the mean absolute error by the in-sample mean ``|y_t - y_{t-m}|``.
- Scaled quantile loss (fev's SQL) is the mean of ``2 rho_q / scale``; utilsforecast's
  ``scaled_quantile_loss`` has no factor 2.
- WQL (Chronos, AutoGluon, gluonts) pools ``2 rho_q`` and ``|y|`` over all series and steps.
- sMAPE is the M4 one: ``200 |y - f| / (|y| + |f|)``, with 0/0 counted as 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from forecasting.data.contract import ID, TARGET, TIME, quantile_label


def pinball_loss(y: npt.ArrayLike, forecast: npt.ArrayLike, q: float) -> np.ndarray:
    """Elementwise pinball loss ``max(q (y - f), (q - 1)(y - f))`` of quantile ``q``."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must lie in [0, 1], got {q}")
    error = np.asarray(y, dtype=float) - np.asarray(forecast, dtype=float)
    return np.maximum(q * error, (q - 1.0) * error)


def scale_denominator(history: npt.ArrayLike, m: int = 1) -> float:
    """MASE denominator: the in-sample mean ``|y_t - y_{t-m}|`` of ``history``.

    When that is zero or undefined (a constant series, or fewer than ``m + 1`` points) the
    history's mean ``|y|`` is used instead if it is positive, else 1.0: an all-constant
    series is scaled by its mean absolute level, an all-zero one by 1.
    """
    if m < 1:
        raise ValueError(f"seasonal lag must be at least 1, got {m}")
    history = np.asarray(history, dtype=float)
    if history.size > m:
        naive_error = float(np.mean(np.abs(history[m:] - history[:-m])))
        if naive_error > 0.0:
            return naive_error
    level = float(np.mean(np.abs(history))) if history.size else 0.0
    return level if level > 0.0 else 1.0


def scaled_quantile_loss(
    y: npt.ArrayLike, quantile_forecasts: Mapping[float, npt.ArrayLike], scale: float
) -> float:
    """fev's SQL for one series: mean over quantiles and steps of ``2 rho_q / scale``."""
    if not quantile_forecasts:
        raise ValueError("need at least one quantile forecast")
    losses = [pinball_loss(y, f, q).mean() for q, f in quantile_forecasts.items()]
    return float(2.0 * np.mean(losses) / scale)


def mase(y: npt.ArrayLike, point: npt.ArrayLike, scale: float) -> float:
    """Mean absolute error of ``point`` divided by ``scale`` (see ``scale_denominator``)."""
    error = np.asarray(y, dtype=float) - np.asarray(point, dtype=float)
    return float(np.mean(np.abs(error)) / scale)


def _smape_terms(y: np.ndarray, point: np.ndarray) -> np.ndarray:
    """``200 |y - f| / (|y| + |f|)`` per element, 0 where both are 0."""
    denominator = np.abs(y) + np.abs(point)
    numerator = 200.0 * np.abs(y - point)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def smape(y: npt.ArrayLike, point: npt.ArrayLike) -> float:
    """M4 sMAPE in percent: mean of ``200 |y - f| / (|y| + |f|)``, 0/0 counting as 0."""
    terms = _smape_terms(np.asarray(y, dtype=float), np.asarray(point, dtype=float))
    return float(np.mean(terms))


def interval_coverage(y: npt.ArrayLike, lower: npt.ArrayLike, upper: npt.ArrayLike) -> float:
    """Share of ``y`` inside the closed interval ``[lower, upper]``."""
    y = np.asarray(y, dtype=float)
    return float(np.mean((y >= np.asarray(lower)) & (y <= np.asarray(upper))))


def owa(smape: float, mase: float, smape_reference: float, mase_reference: float) -> float:
    """M4 Overall Weighted Average relative to a reference (Naive2 in M4)."""
    return (smape / smape_reference + mase / mase_reference) / 2.0


def _series_scales(train: pd.DataFrame, seasonality: int) -> pd.Series:
    """``scale_denominator`` of every series in a long frame, indexed by id."""
    ordered = train.sort_values([ID, TIME])
    return ordered.groupby(ID, sort=False)[TARGET].agg(
        lambda y: scale_denominator(y.to_numpy(), seasonality)
    )


def score_panel(
    train: pd.DataFrame,
    test: pd.DataFrame,
    forecasts: pd.DataFrame,
    quantiles: Sequence[float],
    point_column: str = "p50",
    seasonality: int = 1,
) -> dict[str, float]:
    """Benchmark scores of quantile forecasts for a panel of series.

    ``train`` and ``test`` are long frames (``unique_id, ds, y``); ``forecasts`` has
    ``unique_id, ds`` and one column per quantile named by ``quantile_label``, and must
    cover every test row. Returns:

    - ``smape``, ``mase``: means over series of the per-series values, MASE scaled by
      ``scale_denominator`` of that series' training data with lag ``seasonality``;
    - ``wql``: mean over quantiles of ``sum 2 rho_q / sum |y|``, pooled over series and steps;
    - ``sql``: mean over series of ``scaled_quantile_loss``;
    - ``coverage``: share of test values inside the outermost quantile pair (NaN with fewer
      than two quantiles);
    - ``n_series``: the number of series scored.
    """
    if not quantiles:
        raise ValueError("need at least one quantile")
    quantiles = sorted(quantiles)
    labels = [quantile_label(q) for q in quantiles]
    columns = list(dict.fromkeys([*labels, point_column]))
    missing = [c for c in columns if c not in forecasts.columns]
    if missing:
        raise ValueError(f"forecasts lack columns {missing}")

    merged = test[[ID, TIME, TARGET]].merge(
        forecasts[[ID, TIME, *columns]], on=[ID, TIME], how="left", validate="one_to_one"
    )
    if merged[columns].isna().to_numpy().any():
        raise ValueError("forecasts do not cover every test row")
    scales = _series_scales(train, seasonality)
    row_scale = merged[ID].map(scales).to_numpy()
    if np.isnan(row_scale).any():
        raise ValueError("some test series have no training data")

    ids = merged[ID].to_numpy()
    y = merged[TARGET].to_numpy(dtype=float)
    point = merged[point_column].to_numpy(dtype=float)
    quantile_values = merged[labels].to_numpy(dtype=float)
    rho = np.column_stack(
        [pinball_loss(y, quantile_values[:, i], q) for i, q in enumerate(quantiles)]
    )

    per_row = pd.DataFrame(
        {
            "smape": _smape_terms(y, point),
            "mase": np.abs(y - point) / row_scale,
            "sql": 2.0 * rho.mean(axis=1) / row_scale,
        }
    )
    per_series = per_row.groupby(ids, sort=False).mean()
    coverage = (
        interval_coverage(y, quantile_values[:, 0], quantile_values[:, -1])
        if len(quantiles) > 1
        else float("nan")
    )
    return {
        "smape": float(per_series["smape"].mean()),
        "mase": float(per_series["mase"].mean()),
        "wql": float(np.mean(2.0 * rho.sum(axis=0) / np.abs(y).sum())),
        "sql": float(per_series["sql"].mean()),
        "coverage": coverage,
        "n_series": len(per_series),
    }
