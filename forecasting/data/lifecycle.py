"""Series lifecycle: new, intermittent, smooth or ended, with the Syntetos-Boylan demand class.

Rules, applied in this order to the clean history (one row per period, as
:func:`forecasting.data.validation.validate_history` returns it), up to ``as_of``:

1. ``ended``: no non-zero ``y`` in the last ``settings.ended_after_periods`` periods of the
   ``freq`` grid ending at ``as_of`` (a series with no non-zero value at all is ended too);
2. ``new``: fewer than ``min_length`` observations (the caller computes what a backtest needs);
3. ``intermittent``: ADI >= ``settings.adi_threshold``;
4. ``smooth`` otherwise.

ADI (average demand interval) = n_obs / number of non-zero values (infinite when there is
none). CV2 = squared coefficient of variation of the non-zero values, with the population
standard deviation (ddof=0): (std / mean) ** 2; 0 for a single non-zero value, NaN for none.
The Syntetos-Boylan demand class crosses the two thresholds: smooth (low ADI, low CV2),
erratic (low ADI, high CV2), intermittent (high ADI, low CV2), lumpy (high ADI, high CV2);
a series with no non-zero value (NaN CV2) counts as intermittent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.config.settings import LifecycleSettings
from forecasting.data.contract import ID, TARGET, TIME

NEW = "new"
INTERMITTENT = "intermittent"
SMOOTH = "smooth"
ENDED = "ended"
LIFECYCLES = (NEW, INTERMITTENT, SMOOTH, ENDED)

DEMAND_SMOOTH = "smooth"
DEMAND_ERRATIC = "erratic"
DEMAND_INTERMITTENT = "intermittent"
DEMAND_LUMPY = "lumpy"
DEMAND_CLASSES = (DEMAND_SMOOTH, DEMAND_ERRATIC, DEMAND_INTERMITTENT, DEMAND_LUMPY)

LIFECYCLE_COLUMNS = [ID, "lifecycle", "n_obs", "adi", "cv2", "demand_class", "last_nonzero"]


def _window_start(as_of: pd.Timestamp, freq: str, periods: int) -> pd.Timestamp:
    """First period of the ``periods`` grid periods that end at the last one at or before ``as_of``."""
    return pd.date_range(end=as_of, periods=periods, freq=freq)[0]


def classify_lifecycle(
    history: pd.DataFrame,
    as_of: pd.Timestamp,
    freq: str,
    min_length: int,
    settings: LifecycleSettings,
) -> pd.DataFrame:
    """One row per series (sorted by unique_id): lifecycle, n_obs, adi, cv2, demand_class, last_nonzero."""
    as_of = pd.Timestamp(as_of)
    frame = history.loc[history[TIME] <= as_of, [ID, TIME, TARGET]]
    if frame.empty:
        return pd.DataFrame(
            {
                ID: pd.Series([], dtype=object),
                "lifecycle": pd.Series([], dtype=object),
                "n_obs": pd.Series([], dtype=np.int64),
                "adi": pd.Series([], dtype=np.float64),
                "cv2": pd.Series([], dtype=np.float64),
                "demand_class": pd.Series([], dtype=object),
                "last_nonzero": pd.Series([], dtype="datetime64[ns]"),
            }
        )

    y = frame[TARGET].to_numpy(dtype=np.float64)
    nonzero = (y != 0) & ~np.isnan(y)
    ids = frame[ID].to_numpy()
    counts = frame.groupby(ID, sort=True).size()
    grouped = pd.DataFrame({ID: ids[nonzero], "y": y[nonzero], "ds": frame[TIME].to_numpy()[nonzero]}).groupby(ID)
    sizes = pd.DataFrame(
        {
            "k": grouped["y"].size(),
            "mean": grouped["y"].mean(),
            "var": grouped["y"].var(ddof=0),
            "last_nonzero": grouped["ds"].max(),
        }
    ).reindex(counts.index)
    n_obs = counts.to_numpy(dtype=np.int64)
    k = sizes["k"].fillna(0).to_numpy(dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        adi = np.where(k > 0, n_obs / k, np.inf)
        cv2 = sizes["var"].to_numpy(dtype=np.float64) / sizes["mean"].to_numpy(dtype=np.float64) ** 2

    high_adi = adi >= settings.adi_threshold
    high_cv2 = cv2 >= settings.cv2_threshold  # NaN compares False
    demand_class = np.select(
        [~high_adi & ~high_cv2, ~high_adi & high_cv2, high_adi & ~high_cv2],
        [DEMAND_SMOOTH, DEMAND_ERRATIC, DEMAND_INTERMITTENT],
        default=DEMAND_LUMPY,
    )

    last_nonzero = pd.DatetimeIndex(sizes["last_nonzero"]).as_unit("ns")
    window_start = _window_start(as_of, freq, settings.ended_after_periods)
    ended = np.asarray(last_nonzero.isna() | (last_nonzero < window_start))
    lifecycle = np.select(
        [ended, n_obs < min_length, high_adi],
        [ENDED, NEW, INTERMITTENT],
        default=SMOOTH,
    )
    return pd.DataFrame(
        {
            ID: counts.index.to_numpy(dtype=object),
            "lifecycle": lifecycle.astype(object),
            "n_obs": n_obs,
            "adi": adi,
            "cv2": cv2,
            "demand_class": demand_class.astype(object),
            "last_nonzero": last_nonzero,
        }
    )
