"""The embedded workers' warnings reach the client once each (printed above the progress bar)."""

from __future__ import annotations

import logging
import time
import warnings

from forecasting.config import load_settings
from forecasting.orchestration.executors import dask_client, shutdown_embedded_cluster


def _noisy(i: int) -> int:
    warnings.warn("divide by zero in a model fit", RuntimeWarning, stacklevel=1)
    logging.getLogger("forecasting.training.series").warning("series S%d model M backtest failed", i)
    return i


def test_worker_warnings_and_log_lines_come_to_the_client_once_each():
    settings = load_settings(None, {"compute": {"n_workers": 1, "progress": True}})
    lines: list[str] = []
    try:
        with dask_client(settings, lines.append) as client:
            assert client.gather([client.submit(_noisy, i, pure=False) for i in range(3)]) == [0, 1, 2]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and sum("backtest failed" in line for line in lines) < 3:
                time.sleep(0.2)
    finally:
        shutdown_embedded_cluster()
    assert lines[0].startswith("dask dashboard: http://127.0.0.1:")
    assert sum("RuntimeWarning: divide by zero in a model fit" in line for line in lines) == 1
    assert {line for line in lines if "backtest failed" in line} == {
        f"WARNING forecasting.training.series: series S{i} model M backtest failed" for i in range(3)
    }
