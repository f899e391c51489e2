"""The report reads only the winners' backtest rows, batch by batch: the same rows a whole read gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.orchestration.steps.report import _winners_backtest


def test_winners_rows_match_a_whole_read(tmp_path: Path):
    rng = np.random.default_rng(0)
    ids, candidates, cutoffs = [f"s{i:03d}" for i in range(40)], ["A", "B", "C"], pd.to_datetime(["2024-01-07", "2024-02-04"])
    rows = [(u, c, k, k + pd.Timedelta(weeks=h)) for u in ids for c in candidates for k in cutoffs for h in range(1, 5)]
    backtest = pd.DataFrame(rows, columns=["unique_id", "candidate", "cutoff", "ds"])
    backtest["y"] = rng.normal(size=len(backtest))
    for label in ("p10", "p50", "p90"):
        backtest[label] = rng.normal(size=len(backtest))
    path = tmp_path / "backtest.parquet"
    backtest.to_parquet(path, index=False, row_group_size=50)  # many row groups, so many batches
    winners = pd.DataFrame({"unique_id": ids, "candidate": rng.choice(candidates, size=len(ids))})
    leaderboard = pd.concat([winners.assign(is_winner=True),
                             winners.assign(candidate="C", is_winner=False)], ignore_index=True)

    got = _winners_backtest(path, leaderboard, [0.1, 0.5, 0.9])

    expected = backtest[["unique_id", "candidate", "cutoff", "ds", "y", "p10", "p90"]].merge(winners, on=["unique_id", "candidate"])
    pd.testing.assert_frame_equal(got, expected)
    assert len(got) == len(ids) * len(cutoffs) * 4
