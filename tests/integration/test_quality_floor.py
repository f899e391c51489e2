"""Model-quality floor: per-series selection must beat the naive forecast on real data.

On the 30 shortest M4 Weekly series (80 weeks each, ties broken by numeric id: W295..W324)
the pipeline runs in-process with cheap candidates and nine quantiles, and its published
forecasts are scored on the 13 held-out test weeks. The baseline is the platform's own Naive
candidate run alone (last value as p50, statsforecast's native Naive intervals as the other
quantiles), so the MASE baseline is the M4 "last value" naive and the WQL baseline is a real
probabilistic naive forecast, not a point forecast stretched over every quantile.

Selection must beat it in BOTH pooled WQL and mean MASE. Measured when this test was written
(statsforecast 2.1.1): selection WQL 0.1085 vs Naive 0.1423 (-24 %), MASE 0.968 vs 1.048 (-7.7 %);
winners: MedianEnsemble 15, AutoTheta 5, HistoricAverage 5, SeasonalNaive 5. The floor asserts
a 3 % improvement in each, so a regression that makes selection worse than, or merely as good
as, always answering with the naive forecast fails here. Both runs take about 7 s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from forecasting.config import load_settings
from forecasting.evaluation.losses import score_panel
from forecasting.orchestration.local import run_weekly

N_SERIES = 30
QUANTILES = [round(0.1 * i, 1) for i in range(1, 10)]
CHEAP_CANDIDATES = ["AutoTheta", "SeasonalNaive", "Naive", "HistoricAverage", "RandomWalkWithDrift"]
REQUIRED_IMPROVEMENT = 0.03  # selection must be at least 3 % better than Naive in WQL and MASE


def _shortest_series(train: pd.DataFrame, n: int) -> list[str]:
    lengths = train.groupby("unique_id").size().rename("n").reset_index()
    lengths["number"] = lengths["unique_id"].str[1:].astype(int)
    return lengths.sort_values(["n", "number"])["unique_id"].head(n).tolist()


def _run(data: Path, root: Path, candidates: list[str], ensemble_top_k: int) -> pd.DataFrame:
    compute: dict[str, Any] = {"n_shards": 2, "progress": False, "executor": "serial"}
    settings = load_settings(
        None,
        {
            "data": {"path": str(data)},
            "forecast": {"freq": "W-SUN", "horizon": 13, "season_length": 52,
                         "quantiles": QUANTILES, "as_of": "2017-12-31"},
            "models": {"candidates": [{"name": name} for name in candidates],
                       "fit_time_limit_seconds": 30.0},
            "selection": {"ensemble_top_k": ensemble_top_k},
            "compute": compute,
            "output": {"root": str(root)},
            "registry": {"enabled": False},
        },
    )
    summary = run_weekly(settings)
    published = pd.read_parquet(summary["published"])
    return published[published["run_id"] == summary["run_id"]]


@pytest.mark.shared_data
def test_selection_beats_naive_in_wql_and_mase(shared_data: Path, tmp_path: Path) -> None:
    m4 = shared_data / "m4-weekly"
    train = pd.read_parquet(m4 / "train.parquet")
    series = _shortest_series(train, N_SERIES)
    train = train[train["unique_id"].isin(series)].reset_index(drop=True)
    test = pd.read_parquet(m4 / "test.parquet")
    test = test[test["unique_id"].isin(series)].reset_index(drop=True)
    data = tmp_path / "m4_weekly_shortest.parquet"
    train.to_parquet(data, index=False)

    selected = _run(data, tmp_path / "selection", CHEAP_CANDIDATES, ensemble_top_k=3)
    naive = _run(data, tmp_path / "naive", ["Naive"], ensemble_top_k=0)

    assert set(selected["unique_id"]) == set(series)
    assert set(naive["model"]) == {"Naive"}
    ours = score_panel(train, test, selected, QUANTILES)
    baseline = score_panel(train, test, naive, QUANTILES)
    assert ours["n_series"] == baseline["n_series"] == N_SERIES

    report = (
        f"selection WQL {ours['wql']:.4f} MASE {ours['mase']:.3f} | "
        f"Naive WQL {baseline['wql']:.4f} MASE {baseline['mase']:.3f} | "
        f"winners {selected.groupby('unique_id')['model'].first().value_counts().to_dict()}"
    )
    assert ours["wql"] <= (1 - REQUIRED_IMPROVEMENT) * baseline["wql"], report
    assert ours["mase"] <= (1 - REQUIRED_IMPROVEMENT) * baseline["mase"], report
