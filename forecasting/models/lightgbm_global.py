"""A global LightGBM model: one median booster trained across many series (mlforecast).

Features: lags of the (per-series standardised) target, rolling means and spread,
calendar features of the target date, and optional covariates (dynamic columns
known at every forecast date, static columns per series). One LightGBM model with
the median objective forecasts recursively; its other quantiles come from the
platform's calibration on backtest errors (``evaluation.calibration``), like any
model without native quantiles. A quantile booster fed its own forecasts drifts
apart from the median over the horizon (intervals far too wide by the last step);
conformal quantiles around the recursive median keep the coverage of every step.

Unlike the local models this one is fitted on a panel: it implements the global-model
interface (``models.global_model``: ``fit_panel`` / ``predict_panel``, and ``Tunable``);
the training layer fits it once per shard and backtest cutoff (``training.global_step``)
and hands each series its forecasts. The panel's frequency comes from its caller (the
run's ``forecast.freq``). Fitted on one series without dates (the model contract), it
lays that history on the calendar of its ``freq`` parameter.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from forecasting.data.contract import ID
from forecasting.models.base import Forecast, ForecastModel, ModelError
from forecasting.models.global_model import GlobalModel, Tunable, as_global

# Parameters of LightGBM itself (the rest configure the features).
BOOSTER_PARAMS = ("n_estimators", "learning_rate", "num_leaves", "min_child_samples", "colsample_bytree", "reg_lambda")


def week_of_year(dates: pd.DatetimeIndex) -> np.ndarray:
    """ISO week of the year (a calendar feature; module-level so it pickles)."""
    return dates.isocalendar().week.to_numpy(dtype=np.int64)


class LightGBMGlobal(ForecastModel, GlobalModel, Tunable):
    """Global LightGBM, a recursive median; see the module docstring."""

    tags: ClassVar[dict[str, Any]] = {
        "scope": "global",
        "native_quantiles": False,
        "exogenous": True,
        "min_history": 8,
        "demand_types": ("smooth", "intermittent"),
    }

    def __init__(
        self,
        season_length: int = 1,
        n_lags: int = 13,
        n_estimators: int = 200,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 20,
        colsample_bytree: float = 0.8,
        reg_lambda: float = 0.0,
        target_transform: str = "standard",
        max_history: int | None = 520,
        seed: int = 0,
        freq: str = "W-SUN",
    ) -> None:
        self.season_length = season_length
        self.n_lags = n_lags
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.target_transform = target_transform
        self.max_history = max_history
        self.seed = seed
        self.freq = freq  # the calendar of a history given without dates (a panel brings its own)

    @classmethod
    def get_test_params(cls) -> list[dict[str, Any]]:
        return [{"n_estimators": 10, "num_leaves": 7, "min_child_samples": 5}]

    @staticmethod
    def suggest_params(trial: Any) -> dict[str, Any]:
        """The tuning search space (an optuna trial suggests each parameter)."""
        return {
            "n_estimators": trial.suggest_int("n_estimators", 50, 400, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 7, 63, log=True),
            "min_child_samples": trial.suggest_int("min_child_samples", 5, 100, log=True),
            "colsample_bytree": trial.suggest_float("colsample_bytree", 0.5, 1.0),
            "reg_lambda": trial.suggest_float("reg_lambda", 0.0, 10.0),
            "target_transform": trial.suggest_categorical("target_transform", ["standard", "difference"]),
        }

    # --- features -------------------------------------------------------------------
    def _lags(self) -> list[int]:
        lags = set(range(1, self.n_lags + 1))
        if self.season_length > 1:
            lags.add(self.season_length)
        return sorted(lags)

    def _regressor(self, quantile: float) -> Any:
        from lightgbm import LGBMRegressor

        return LGBMRegressor(
            objective="quantile",
            alpha=quantile,
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            num_leaves=self.num_leaves,
            min_child_samples=self.min_child_samples,
            colsample_bytree=self.colsample_bytree,
            reg_lambda=self.reg_lambda,
            random_state=self.seed,
            deterministic=True,
            force_row_wise=True,
            num_threads=1,  # one core per task: Dask workers run one task per core
            verbose=-1,
        )

    def _pipeline(self, freq: str, quantiles: Sequence[float]) -> Any:
        from mlforecast import MLForecast
        from mlforecast.lag_transforms import RollingMean, RollingStd
        from mlforecast.target_transforms import Differences, LocalStandardScaler

        transforms = {"standard": [LocalStandardScaler()], "difference": [Differences([1]), LocalStandardScaler()], "none": []}
        if self.target_transform not in transforms:
            raise ModelError(f"LightGBMGlobal: unknown target_transform {self.target_transform!r}; use one of {sorted(transforms)}")
        return MLForecast(
            models={_column(q): self._regressor(q) for q in quantiles},
            freq=freq,
            lags=self._lags(),
            lag_transforms={1: [RollingMean(4), RollingMean(13), RollingStd(13)]},
            date_features=["month", week_of_year],
            target_transforms=transforms[self.target_transform] or None,
            num_threads=1,
        )

    # --- panel API ------------------------------------------------------------------
    def fit_panel(
        self,
        panel: pd.DataFrame,
        freq: str,
        quantiles: Sequence[float] = (0.5,),
        dynamic: pd.DataFrame | None = None,
        static: pd.DataFrame | None = None,
    ) -> LightGBMGlobal:
        """Fit the median on a long frame (unique_id, ds, y), with optional covariates.

        ``quantiles`` is accepted for the panel contract; only the median is modelled.
        ``dynamic``: (unique_id, ds, columns...) known at every date it covers, forecast
        dates included; ``static``: (unique_id, columns...) one row per series.
        """
        quantiles = (0.5,)
        frame = panel[[ID, "ds", "y"]].astype({"ds": "datetime64[ns]"})
        if dynamic is not None:
            dynamic = dynamic.astype({"ds": "datetime64[ns]"})
        if self.max_history:
            frame = frame.groupby(ID, sort=False).tail(self.max_history)
        frame = _with_covariates(frame, dynamic, static)
        static_columns = [c for c in static.columns if c != ID] if static is not None else []
        self.quantiles_ = tuple(quantiles)
        self.dynamic_ = dynamic
        self.freq_ = freq
        self.pipeline_ = self._pipeline(freq, quantiles)
        self.pipeline_.fit(frame, static_features=static_columns, dropna=False)
        self.n_obs_ = int(len(frame))
        return self

    def predict_panel(self, h: int) -> pd.DataFrame:
        """Forecasts (unique_id, ds, and the median in column 0.5)."""
        if not hasattr(self, "pipeline_"):
            raise ModelError("LightGBMGlobal is not fitted: call fit_panel first")
        future = None
        if self.dynamic_ is not None:
            grid = self.pipeline_.make_future_dataframe(h)
            future = grid.merge(self.dynamic_, on=[ID, "ds"], how="left")
        with warnings.catch_warnings():  # missing lags of short series are expected: LightGBM handles them
            warnings.filterwarnings("ignore", message="Found null values", category=UserWarning)
            predicted = self.pipeline_.predict(h, X_df=future)
        return predicted.rename(columns={_column(q): q for q in self.quantiles_})

    # --- the local contract: a panel of one series ------------------------------------
    def _fit(self, y: np.ndarray, X: np.ndarray | None) -> None:
        ds = pd.date_range(pd.Timestamp("2000-01-01"), periods=y.size, freq=self.freq)
        self._local = pd.DataFrame({ID: "series", "ds": ds, "y": y})

    def _predict(self, h: int, quantiles: tuple[float, ...], X_future: np.ndarray | None) -> Forecast:
        predicted = as_global(self.clone()).fit_panel(self._local, self.freq).predict_panel(h)
        return Forecast(point=predicted[0.5].to_numpy())


GLOBAL_MODELS: dict[str, type[ForecastModel]] = {"LightGBM": LightGBMGlobal}


def _column(quantile: float) -> str:
    return f"q{round(quantile * 1000):04d}"


def _with_covariates(frame: pd.DataFrame, dynamic: pd.DataFrame | None, static: pd.DataFrame | None) -> pd.DataFrame:
    if dynamic is not None:
        frame = frame.merge(dynamic, on=[ID, "ds"], how="left")
    if static is not None:
        frame = frame.merge(static, on=ID, how="left")
    return frame
