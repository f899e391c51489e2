"""Does the configured frequency fit the dates? If not, which anchor do they fall on?

Weekly data is anchored to a weekday (``W-SUN``, ``W-FRI``, ...), monthly data to the start
or the end of the month. A wrong anchor puts every date off the frequency grid, which
validation would quarantine series by series; checking the dates first gives one clear
error that names the frequency the dates do fall on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecasting.config.loader import ConfigError

_WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")
_DAY_NAMES = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays")
_MONTHLY = ("MS", "ME")
_QUARTERLY = ("QS", "QE")
_YEARLY = ("YS", "YE")
MISMATCH_SHARE = 0.5  # more dates than this off the grid: the frequency is wrong, not the data
FIT_SHARE = 0.95  # a suggested frequency must hold at least this share of the dates


@dataclass(frozen=True)
class FrequencyCheck:
    """How many dates lie on the configured frequency's grid, and a better frequency if one fits."""

    freq: str
    off_grid_share: float
    suggested: str | None
    fits_suggested_share: float
    description: str  # "Fridays", "the first of the month", ...

    def message(self, column: str = "ds") -> str:
        """The error text for a frequency that does not fit (with the setting to change)."""
        text = (f"forecast.freq {self.freq} does not fit the data: {self.off_grid_share:.0%} of the dates in "
                f"column {column!r} are off its grid")
        if self.suggested:
            text += (f"; {self.fits_suggested_share:.0%} of them fall on {self.description}: "
                     f"use --freq {self.suggested} (config forecast.freq: {self.suggested})")
        return text


def _on_grid(dates: pd.DatetimeIndex, freq: str) -> pd.Series:
    offset = pd.tseries.frequencies.to_offset(freq)
    return pd.Series([offset.is_on_offset(d) for d in dates], index=dates, dtype=bool)


def _family(freq: str) -> tuple[str, ...]:
    offset = pd.tseries.frequencies.to_offset(freq)
    name = offset.name.split("-")[0].lstrip("0123456789")
    if name == "W":
        return tuple(f"W-{day}" for day in _WEEKDAYS)
    if name in ("MS", "ME", "M", "BMS", "BME", "SMS"):
        return _MONTHLY
    if name in ("QS", "QE", "Q", "BQS", "BQE"):
        return _QUARTERLY
    if name in ("YS", "YE", "Y", "A", "AS", "BYS", "BYE"):
        return _YEARLY
    return ()


def _describe(freq: str) -> str:
    if freq.startswith("W-"):
        return _DAY_NAMES[_WEEKDAYS.index(freq[2:])]
    return {"MS": "the first day of a month", "ME": "the last day of a month", "QS": "the first day of a quarter",
            "QE": "the last day of a quarter", "YS": "the first day of a year", "YE": "the last day of a year"}[freq]


def check_frequency(dates: pd.Series, freq: str) -> FrequencyCheck:
    """Share of the rows whose date is off ``freq``'s grid; the best anchor of the same kind."""
    values = pd.to_datetime(dates.dropna())
    if values.empty:
        return FrequencyCheck(freq, 0.0, None, 0.0, "")
    counts = values.value_counts()
    unique = pd.DatetimeIndex(counts.index)
    weights, total = counts.to_numpy(), int(counts.sum())
    off = int(weights[~_on_grid(unique, freq).to_numpy()].sum()) / total
    best, best_share = None, 0.0
    if off > 0:
        for candidate in _family(freq):
            share = int(weights[_on_grid(unique, candidate).to_numpy()].sum()) / total
            if share > best_share:
                best, best_share = candidate, share
    if best is None or best_share < FIT_SHARE or best_share <= 1.0 - off:
        return _inferred(freq, off, unique, weights, total)
    return FrequencyCheck(freq, off, best, best_share, _describe(best))


def _inferred(freq: str, off: float, unique: pd.DatetimeIndex, weights: np.ndarray, total: int) -> FrequencyCheck:
    """Another kind of frequency (monthly data under a weekly setting): the one pandas infers from
    the dates, when they form one regular grid."""
    nothing = FrequencyCheck(freq, off, None, 0.0, "")
    if off <= MISMATCH_SHARE or len(unique) < 3:
        return nothing
    try:
        inferred = pd.infer_freq(unique.sort_values())
    except (TypeError, ValueError):
        return nothing
    if not inferred or inferred == freq:
        return nothing
    share = int(weights[_on_grid(unique, inferred).to_numpy()].sum()) / total
    return FrequencyCheck(freq, off, inferred, share, f"a regular {inferred} grid") if share >= FIT_SHARE else nothing


def require_fitting_frequency(dates: pd.Series, freq: str, column: str = "ds") -> FrequencyCheck:
    """Raise ConfigError when most dates are off ``freq``'s grid and another anchor holds them."""
    check = check_frequency(dates, freq)
    if check.off_grid_share > MISMATCH_SHARE and check.suggested:
        raise ConfigError(check.message(column))
    return check
