"""The interface of a global model: fitted across a panel of series, not one series at a time.

A model tagged ``scope: global`` cannot run in the per-series loop. It implements
``GlobalModel`` besides the model contract (``models.base``): ``fit_panel`` on a long frame
of many series, then ``predict_panel`` for all of them. Training fits it once per shard and
backtest cutoff (``training.global_step``), the registered bundle once per training panel
(``registry.member_forecasts``); both pass the run's frequency (``forecast.freq``). A global
model that can be tuned also implements ``Tunable``: its search space.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import pandas as pd

from forecasting.models.base import ModelError


@runtime_checkable
class GlobalModel(Protocol):
    """Fitted on a panel, forecasts every series of it."""

    def fit_panel(
        self,
        panel: pd.DataFrame,
        freq: str,
        quantiles: Sequence[float] = (0.5,),
        dynamic: pd.DataFrame | None = None,
        static: pd.DataFrame | None = None,
    ) -> GlobalModel:
        """Fit on ``panel`` (unique_id, ds, y) whose dates lie on the grid of ``freq``; returns self.

        ``dynamic``: covariates (unique_id, ds, columns...) known at every date they cover,
        forecast dates included; ``static``: (unique_id, columns...) one row per series.
        """
        ...

    def predict_panel(self, h: int) -> pd.DataFrame:
        """``h`` steps of every series: unique_id, ds and one column per quantile (the float itself)."""
        ...


@runtime_checkable
class Tunable(Protocol):
    """A model with a search space for tuning."""

    def suggest_params(self, trial: Any) -> dict[str, Any]:
        """Parameters suggested by an optuna ``trial`` (a ``FixedTrial`` replays given ones)."""
        ...


def as_global(model: object) -> GlobalModel:
    """``model`` as a global model; a ``ModelError`` naming it when it lacks the panel methods."""
    if not isinstance(model, GlobalModel):
        raise ModelError(f"{type(model).__name__} is tagged global but has no fit_panel / predict_panel")
    return model


def as_tunable(model: object) -> Tunable:
    """``model`` as a tunable one; a ``ModelError`` naming it when it has no search space."""
    if not isinstance(model, Tunable):
        raise ModelError(f"{type(model).__name__} cannot be tuned: it has no suggest_params")
    return model
