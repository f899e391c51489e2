"""The pyfunc, logged as "models from code": MLflow runs this file instead of unpickling a class."""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class ForecastBundleModel(PythonModel):
    """``models:/<name>@champion``: quantile forecasts for the series ids (and history) it is given."""

    def load_context(self, context: Any) -> None:
        from forecasting.registry.bundle import bundle_from_context_artifacts

        self.forecaster = bundle_from_context_artifacts(context.artifacts)

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        horizon = (params or {}).get("horizon")
        return self.forecaster.predict(model_input, horizon)


mlflow.models.set_model(ForecastBundleModel())
