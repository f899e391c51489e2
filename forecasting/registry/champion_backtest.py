"""The champion's candidates on the new run's backtest windows, so both versions choose on the same data.

A champion candidate configured exactly as one of the new run's (same label, model, parameters,
quantiles, season, conformal windows and history cap) was already backtested by the new run at
these cutoffs: its rows are reused. Any other (a removed, renamed or re-parameterised model, a
plug-in of another version) is refitted through the champion's bundle at each cutoff, on the
history up to it, as that version would have fitted it (``member_forecasts``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from forecasting.config import Settings
from forecasting.data.contract import ID, quantile_label
from forecasting.evaluation.procedure import ENSEMBLE
from forecasting.registry.bundle import BundleForecaster, series_arrays
from forecasting.registry.member_forecasts import MemberForecasts, bundle_plan
from forecasting.registry.replay import truncate


def _fingerprint(settings: Settings, label: str) -> tuple[Any, ...] | None:
    found = next((c for c in settings.models.candidates if c.label == label), None)
    if found is None:
        return None
    moves_forward = settings.backtest.move_forward if found.move_forward is None else found.move_forward
    return (found.name, sorted(found.params.items()), tuple(settings.forecast.quantiles), settings.season_length,
            settings.models.conformal_windows, settings.models.max_history_seasons, moves_forward)


def shared_labels(champion: Settings, new: Settings) -> set[str]:
    """The champion's candidates the new run backtested exactly as the champion would have.

    The pooled ensemble is shared too when both configurations build it alike (the same
    candidates, ensemble and selection settings): its forward-only backtest forecasts are then
    the champion's as well.
    """
    shared = {c.label for c in champion.models.candidates
              if _fingerprint(champion, c.label) is not None and _fingerprint(champion, c.label) == _fingerprint(new, c.label)}
    alike = (len(shared) == len(champion.models.candidates) == len(new.models.candidates)
             and champion.ensemble == new.ensemble and champion.selection == new.selection)
    return shared | {ENSEMBLE} if alike and champion.ensemble.enabled else shared


def champion_backtest(champion: BundleForecaster, new_settings: Settings, backtest: pd.DataFrame,
                      history: pd.DataFrame, ids: Sequence[str]) -> pd.DataFrame:
    """Rows like the new run's backtest (unique_id, candidate, cutoff, ds, y, quantiles) for the champion's candidates."""
    settings = champion.settings
    labels = [c.label for c in settings.models.candidates]
    shared = shared_labels(settings, new_settings)
    frame = backtest[backtest[ID].isin(set(ids))]
    reused = frame[frame["candidate"].isin(shared)]
    missing = [label for label in labels if label not in shared]  # the ensemble is never refitted here
    if not missing or frame.empty:
        return reused.reset_index(drop=True)
    # one row per (series, cutoff, date) of the new run's windows: where the refits must land
    grid = frame.drop_duplicates([ID, "cutoff", "ds"])[[ID, "cutoff", "ds", "y"]]
    horizon = int(grid.groupby([ID, "cutoff"]).size().max())
    columns = [quantile_label(q) for q in new_settings.forecast.quantiles]
    parts = [reused]
    plan, broken = bundle_plan(settings, horizon)
    windows = grid.drop_duplicates([ID, "cutoff"]).sort_values([ID, "cutoff"])
    for _, same_index in windows.groupby(windows.groupby(ID).cumcount()):  # oldest window first
        at = same_index.set_index(ID)["cutoff"]
        series = series_arrays(truncate(history, at))
        members = MemberForecasts(settings, plan, broken, series, champion.group_of, champion.global_params)
        members.ensure({label: list(series) for label in missing})
        for uid in series:
            dates = grid[(grid[ID] == uid) & (grid["cutoff"] == at[uid])].sort_values("ds")
            for label in missing:
                try:
                    forecast = members.get(uid, label)
                except Exception:  # this candidate has no forecast here: the champion chooses without it
                    continue
                rows = dates.assign(candidate=label)
                for q, column in zip(new_settings.forecast.quantiles, columns, strict=True):
                    rows[column] = forecast[q][: len(rows)] if q in forecast else float("nan")
                parts.append(rows)
    return pd.concat(parts, ignore_index=True)
