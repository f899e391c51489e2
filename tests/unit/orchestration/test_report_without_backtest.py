"""A run in which no series could be backtested (the horizon is longer than every history) still
gets its report and metrics: typed empty scores, backtest and leaderboard, not a report_error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.config import load_settings
from forecasting.orchestration.local import run_weekly


def test_the_report_of_a_run_without_any_backtest(tmp_path):
    dates = pd.date_range("2020-01-05", periods=120, freq="W-SUN")
    rng = np.random.default_rng(0)
    data = tmp_path / "history.parquet"
    pd.concat([pd.DataFrame({"unique_id": f"s{i}", "ds": dates, "y": rng.uniform(1, 9, dates.size)}) for i in range(5)],
              ignore_index=True).to_parquet(data)
    settings = load_settings(overrides={
        "data": {"path": str(data)}, "forecast": {"horizon": 200},
        "models": {"candidates": [{"name": "Naive"}, {"name": "HistoricAverage"}]},
        "compute": {"executor": "serial", "n_shards": 1, "progress": False},
        "output": {"root": str(tmp_path / "out")}, "registry": {"enabled": False},
    })
    summary = run_weekly(settings)
    assert summary["counts"] == {"new": 5}
    assert "report_error" not in summary
    html = Path(summary["report"]).read_text(encoding="utf-8")
    assert '<div class="v">5</div><div class="k">new (100.0%)</div>' in html
    metrics = Path(summary["metrics"]).read_text(encoding="utf-8")
    assert 'forecasting_run_series{status="new"} 5' in metrics
    for name in ("scores", "backtest", "leaderboard"):
        frame = pd.read_parquet(summary["run_dir"] + f"/{name}.parquet")
        assert frame.empty and {"unique_id", "candidate"} <= set(frame.columns)
