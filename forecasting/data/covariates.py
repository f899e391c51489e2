"""Covariates: an optional second input beside the history, kept honest about time.

A dynamic covariate file has key columns, a date column and covariate columns. Keys
name a series (``unique_id``) or a group of series (for example a store); the
group keys of a series are read from its id with ``id_pattern``, a regular
expression whose named groups are the key columns (``^(?P<Store>\\d+)_``).

Each dynamic column is declared either
- known in advance (holidays, planned promotions or markdowns): used at its own date,
  future dates included;
- past-only (temperature, prices, CPI): shifted by the horizon, so the value used at
  a forecast date was observed at least ``horizon`` periods before it, never after
  the forecast origin.
A static file has key columns and per-series (or per-group) columns; text columns
become category codes. Undeclared columns are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from forecasting.config import Settings
from forecasting.data.contract import ID, TIME


class CovariateError(ValueError):
    """The covariate input does not fit its declaration."""


@dataclass(frozen=True)
class CovariateSpec:
    """Where covariates come from and how each may be used."""

    path: Path | None = None
    time_col: str = "ds"
    keys: tuple[str, ...] = (ID,)
    id_pattern: str | None = None
    known_in_advance: tuple[str, ...] = ()
    past_only: tuple[str, ...] = ()
    static_path: Path | None = None
    static: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return self.path is not None or self.static_path is not None


@dataclass(frozen=True)
class Covariates:
    """Per-series covariates: dynamic (unique_id, ds, ...) and static (unique_id, ...)."""

    dynamic: pd.DataFrame | None
    static: pd.DataFrame | None


def _read(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise CovariateError(f"covariate file {path} does not exist")
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def series_keys(ids: Sequence[str], spec: CovariateSpec) -> pd.DataFrame:
    """unique_id and its key columns (as text); ids the pattern does not match are an error."""
    frame = pd.DataFrame({ID: [str(i) for i in ids]})
    if spec.keys == (ID,):
        return frame
    if not spec.id_pattern:
        raise CovariateError(f"covariates keyed by {list(spec.keys)} need id_pattern to find the keys in unique_id")
    pattern = re.compile(spec.id_pattern)
    missing_groups = set(spec.keys) - set(pattern.groupindex)
    if missing_groups:
        raise CovariateError(f"id_pattern {spec.id_pattern!r} has no named group for keys {sorted(missing_groups)}")
    extracted = frame[ID].str.extract(pattern)
    unmatched = frame[ID][extracted[list(spec.keys)].isna().any(axis=1)]
    if len(unmatched):
        raise CovariateError(f"series {unmatched.iloc[0]!r} (and {len(unmatched) - 1} more) do not match id_pattern {spec.id_pattern!r}")
    return pd.concat([frame, extracted[list(spec.keys)]], axis=1)


def _keyed(frame: pd.DataFrame, spec: CovariateSpec, what: str, columns: Sequence[str]) -> pd.DataFrame:
    absent = [c for c in (*spec.keys, *columns) if c not in frame.columns]
    if absent:
        raise CovariateError(f"{what} has no columns {absent}")
    frame = frame.copy()
    for key in spec.keys:
        frame[key] = frame[key].astype(str)
    return frame


def _dynamic(spec: CovariateSpec, keys: pd.DataFrame, freq: str, horizon: int) -> pd.DataFrame | None:
    columns = [*spec.known_in_advance, *spec.past_only]
    if spec.path is None or not columns:
        return None
    raw = _keyed(_read(spec.path), spec, f"covariate file {spec.path}", [spec.time_col, *columns])
    raw[TIME] = pd.to_datetime(raw[spec.time_col])
    raw = raw[[*spec.keys, TIME, *columns]]
    if raw.duplicated([*spec.keys, TIME]).any():
        raise CovariateError(f"covariate file {spec.path} has duplicate rows for the same keys and date")
    parts = []
    for key_values, part in raw.groupby(list(spec.keys), sort=False):
        part = part.set_index(TIME).sort_index()
        grid = pd.date_range(part.index.min(), part.index.max(), freq=freq)
        if not part.index.isin(grid).all():
            raise CovariateError(f"covariate file {spec.path}: dates of keys {key_values} are not on the {freq} grid")
        # One more horizon at the end: the past-only values shifted there are still observed ones.
        part = part.reindex(pd.date_range(grid[0], periods=len(grid) + horizon, freq=freq))
        part[list(spec.past_only)] = part[list(spec.past_only)].shift(horizon)
        part[list(spec.keys)] = part[list(spec.keys)].ffill()
        parts.append(part.rename_axis(TIME).reset_index())
    shifted = pd.concat(parts, ignore_index=True)
    for column in columns:
        shifted[column] = pd.to_numeric(shifted[column], errors="coerce").astype("float64")
    dynamic = keys.merge(shifted, on=list(spec.keys), how="inner")
    return dynamic[[ID, TIME, *columns]].sort_values([ID, TIME]).reset_index(drop=True)


def _static(spec: CovariateSpec, keys: pd.DataFrame) -> pd.DataFrame | None:
    if spec.static_path is None or not spec.static:
        return None
    raw = _keyed(_read(spec.static_path), spec, f"static file {spec.static_path}", spec.static)
    if raw.duplicated(list(spec.keys)).any():
        raise CovariateError(f"static file {spec.static_path} has more than one row for the same keys")
    static = keys.merge(raw[[*spec.keys, *spec.static]], on=list(spec.keys), how="left")[[ID, *spec.static]]
    for column in spec.static:
        if not pd.api.types.is_numeric_dtype(static[column]):
            static[column] = static[column].astype("category").cat.codes.astype("float64").where(static[column].notna())
    return static.reset_index(drop=True)


def load_covariates(spec: CovariateSpec, ids: Sequence[str], freq: str, horizon: int) -> Covariates | None:
    """The declared covariates of ``ids``; None when no covariate input is configured."""
    if not spec.enabled:
        return None
    overlap = set(spec.known_in_advance) & set(spec.past_only)
    if overlap:
        raise CovariateError(f"covariates {sorted(overlap)} are declared both known_in_advance and past_only")
    keys = series_keys(ids, spec)
    return Covariates(dynamic=_dynamic(spec, keys, freq, horizon), static=_static(spec, keys))


def covariate_spec(settings: Settings) -> CovariateSpec:
    """The ``covariates`` settings as a spec ``load_covariates`` reads."""
    c = settings.covariates
    return CovariateSpec(
        path=c.path, time_col=c.time_col, keys=tuple(c.keys), id_pattern=c.id_pattern,
        known_in_advance=tuple(c.known_in_advance), past_only=tuple(c.past_only),
        static_path=c.static_path, static=tuple(c.static),
    )
