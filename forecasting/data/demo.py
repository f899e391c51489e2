"""A synthetic weekly-demand panel on which the choice of model matters.

``generate_demo_panel`` returns long-format history (``unique_id``, ``ds``, ``y``) with
non-negative unit demand. Each series has one *kind* (returned with
``return_kinds=True``):

- ``"smooth"`` (~25%): level x trend (some damped, some flat), no yearly seasonality,
  Poisson-gamma noise, a share with promotion spikes;
- ``"seasonal"`` (~30%): as ``"smooth"`` plus yearly seasonality (one season =
  ``season_length`` periods), a share with a holiday bump in the weeks before Christmas;
- ``"intermittent"`` (~20%): mostly zero periods (ADI > 1.32 guaranteed), negative
  binomial sizes when non-zero;
- ``"new"`` (~10%): launched late, rows only for the last 8 to 60 periods;
- ``"discontinued"`` (~5%): no rows for at least the last 30 periods (half the panel when
  it is shorter than 60 periods), after a short phase-out;
- ``"level_shift"`` (~10%): smooth or seasonal, with a structural break in the last year.

All other series run over the full grid and end at ``end``.
"""

from __future__ import annotations

from typing import Literal, overload

import numpy as np
import pandas as pd

from forecasting.data.contract import ID, TARGET, TIME

KINDS: tuple[str, ...] = (
    "smooth",
    "seasonal",
    "intermittent",
    "new",
    "discontinued",
    "level_shift",
)
KIND_SHARES: dict[str, float] = {
    "smooth": 0.25,
    "seasonal": 0.30,
    "intermittent": 0.20,
    "new": 0.10,
    "discontinued": 0.05,
    "level_shift": 0.10,
}
MIN_PERIODS = 12
_MAX_NONZERO_SHARE = 1 / 1.4  # intermittent: ADI = periods / non-zero periods >= 1.4
_NEW_MIN, _NEW_MAX = 8, 60
_ENDED_GAP = 30


def _kind_counts(n_series: int) -> np.ndarray:
    """Largest-remainder split of ``n_series`` over KINDS; every kind present if n >= 6."""
    shares = np.array([KIND_SHARES[k] for k in KINDS])
    raw = shares * n_series
    counts = np.floor(raw).astype(int)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: n_series - counts.sum()]] += 1
    if n_series >= len(KINDS):
        for i in np.flatnonzero(counts == 0):
            counts[np.argmax(counts)] -= 1
            counts[i] += 1
    return counts


def _season_length(freq: str) -> int:
    """W 52, M 12, D 7, ... as the settings imply (imported lazily: pydantic is slow to load)."""
    from forecasting.config.settings import default_season_length

    return default_season_length(freq)


def _holiday_ramp(dates: pd.DatetimeIndex, season_length: int) -> np.ndarray:
    """0..1 weight of the pre-Christmas bump for each period."""
    if season_length == 12:  # monthly: the whole of December, a little of November
        month = dates.month.to_numpy()
        return np.where(month == 12, 1.0, np.where(month == 11, 0.3, 0.0))
    xmas = pd.to_datetime({"year": dates.year, "month": 12, "day": 25})
    days_to = (xmas.to_numpy() - dates.to_numpy()) / np.timedelta64(1, "D")
    return np.where(days_to >= 0, np.clip(1.0 - days_to / 35.0, 0.0, 1.0), 0.0)


def _periods_per_year(dates: pd.DatetimeIndex) -> int:
    step = (dates[-1] - dates[0]) / (len(dates) - 1)
    return max(1, round(pd.Timedelta(days=365.25) / step))


@overload
def generate_demo_panel(
    n_series: int = ...,
    n_periods: int = ...,
    freq: str = ...,
    end: str = ...,
    seed: int = ...,
    *,
    season_length: int | None = ...,
    return_kinds: Literal[False] = ...,
) -> pd.DataFrame: ...


@overload
def generate_demo_panel(
    n_series: int = ...,
    n_periods: int = ...,
    freq: str = ...,
    end: str = ...,
    seed: int = ...,
    *,
    season_length: int | None = ...,
    return_kinds: Literal[True],
) -> tuple[pd.DataFrame, pd.DataFrame]: ...


def generate_demo_panel(
    n_series: int = 300,
    n_periods: int = 156,
    freq: str = "W-SUN",
    end: str = "2025-12-28",
    seed: int = 7,
    *,
    season_length: int | None = None,
    return_kinds: bool = False,
) -> pd.DataFrame | tuple[pd.DataFrame, pd.DataFrame]:
    """Synthetic demand panel ``[unique_id, ds, y]``, deterministic for ``seed``.

    ``end`` is the last period (rolled back onto the ``freq`` grid if it is off it);
    ``season_length`` defaults to what ``freq`` implies (W 52, M 12, D 7). With
    ``return_kinds=True`` also returns ``DataFrame[unique_id, kind]`` (see module doc).
    """
    if n_series < 1:
        raise ValueError(f"n_series must be >= 1, got {n_series}")
    if n_periods < MIN_PERIODS:
        raise ValueError(f"n_periods must be >= {MIN_PERIODS}, got {n_periods}")
    offset = pd.tseries.frequencies.to_offset(freq)
    last = offset.rollback(pd.Timestamp(end))
    dates = pd.date_range(end=last, periods=n_periods, freq=offset).astype("datetime64[ns]")
    m = season_length or _season_length(freq)
    ppy = _periods_per_year(dates)

    rng = np.random.default_rng(seed)
    n, T = n_series, n_periods
    t = np.arange(T, dtype=float)
    kinds = rng.permutation(np.repeat(np.array(KINDS), _kind_counts(n)))
    is_kind = {k: kinds == k for k in KINDS}

    def u(lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
        return rng.uniform(lo, hi, n)

    def p(**by_kind: float) -> np.ndarray:  # per-series probability from its kind
        return np.select([is_kind[k] for k in by_kind], list(by_kind.values()), 0.0)

    has_season = u() < p(seasonal=1.0, level_shift=0.5, new=0.3, discontinued=0.5)
    has_trend = u() < p(smooth=0.6, seasonal=0.5, level_shift=0.3, discontinued=0.3)
    has_holiday = has_season & (u() < p(seasonal=0.5, level_shift=0.3))
    has_promo = u() < p(smooth=0.35, seasonal=0.35, level_shift=0.2, new=0.2)

    # Smooth demand mean: level x trend x seasonality x holiday x promotions x break.
    level = np.clip(np.exp(rng.normal(np.log(40.0), 1.0, n)), 5.0, 3000.0)
    growth = u(-0.5, 1.0)
    phi = u(0.90, 0.98)
    damped = u() < 0.5
    lin = t / (T - 1)
    damp = (1 - phi[:, None] ** t) / (1 - phi[:, None])
    damp /= damp[:, -1:]
    trend = np.clip(
        1 + (has_trend * growth)[:, None] * np.where(damped[:, None], damp, lin), 0.05, None
    )

    amp, amp2 = u(0.15, 0.5), u(0.0, 0.5)
    ph1, ph2 = u(0, 2 * np.pi), u(0, 2 * np.pi)
    w = 2 * np.pi * t / m
    season = np.exp(
        (has_season * amp)[:, None]
        * (np.cos(w - ph1[:, None]) + amp2[:, None] * np.cos(2 * w - ph2[:, None]))
    )
    holiday = 1 + (has_holiday * u(0.5, 2.0))[:, None] * _holiday_ramp(dates, m)
    promo_hit = has_promo[:, None] & (rng.random((n, T)) < 0.04)
    promo = np.where(promo_hit, rng.uniform(1.5, 3.0, (n, T)), 1.0)

    brk = rng.integers(max(1, T - ppy), T - 3, n)
    shift = np.where(u() < 0.5, u(0.35, 0.7), u(1.5, 2.5))
    shift_mult = np.where(
        is_kind["level_shift"][:, None] & (t >= brk[:, None]), shift[:, None], 1.0
    )

    new_len = rng.integers(_NEW_MIN, min(_NEW_MAX, T - 1) + 1, n)
    start = T - new_len
    launch = np.clip((t - start[:, None] + 1) / u(1, 6)[:, None], 0.2, 1.0)
    gap = min(_ENDED_GAP, T // 2)
    stop = rng.integers(T // 3, T - gap, n)  # last index with a row
    phase_out = np.clip((stop[:, None] - t + 1) / u(2, 12)[:, None], 0.3, 1.0)
    life = np.where(is_kind["new"][:, None], launch, 1.0)
    life = np.where(is_kind["discontinued"][:, None], phase_out, life)

    mu = level[:, None] * trend * season * holiday * promo * shift_mult * life
    shape = u(5.0, 50.0)[:, None]
    y = rng.poisson(mu * rng.gamma(shape, 1.0 / shape, (n, T))).astype(float)

    # Intermittent: Bernoulli occurrence x (1 + negative binomial) size, ADI capped.
    occur = rng.random((n, T)) < u(0.08, 0.55)[:, None]
    keys = np.where(occur, rng.random((n, T)), np.inf)
    rank = np.argsort(np.argsort(keys, axis=1), axis=1)
    occur &= rank < max(1, int(T * _MAX_NONZERO_SHARE))
    empty = ~occur.any(axis=1)
    occur[empty, rng.integers(0, T, n)[empty]] = True
    r = u(1.0, 5.0)[:, None]
    size_mean = u(1.0, 8.0)[:, None]
    sizes = 1 + rng.negative_binomial(r, r / (r + size_mean - 1), (n, T))
    y = np.where(is_kind["intermittent"][:, None], np.where(occur, sizes, 0.0), y)

    keep = np.ones((n, T), dtype=bool)
    keep &= ~is_kind["new"][:, None] | (t >= start[:, None])
    keep &= ~is_kind["discontinued"][:, None] | (t <= stop[:, None])

    width = max(4, len(str(n)))
    ids = np.array([f"SKU-{i:0{width}d}" for i in range(1, n + 1)], dtype=object)
    flat = keep.ravel()
    panel = pd.DataFrame(
        {
            ID: np.repeat(ids, T)[flat],
            TIME: np.tile(dates.to_numpy(), n)[flat],
            TARGET: y.ravel()[flat].astype("float64"),
        }
    )
    if not return_kinds:
        return panel
    return panel, pd.DataFrame({ID: ids, "kind": kinds.astype(object)})
