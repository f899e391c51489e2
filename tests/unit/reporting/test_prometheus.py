"""The Prometheus export: text format that a strict reader accepts, with the documented families."""

from __future__ import annotations

import pytest
from prometheus_format import parse
from test_figures import BOARD, LEDGER

from forecasting.reporting.figures import collect_figures
from forecasting.reporting.prometheus import Metric, monitoring_metrics, render, run_metrics


def test_run_metrics_parse_and_carry_the_figures():
    figures = collect_figures("20251228-abc", "2025-12-28T00:00:00", LEDGER, BOARD, [0.1, 0.5, 0.9],
                              timings={"prepare": 1.5, "train": 10.0})
    families = parse(render(run_metrics(figures, 1.7e9, 1.8e9)))
    assert {s[0]["status"]: s[1] for s in families["forecasting_run_series"]["samples"]} == figures.counts
    assert families["forecasting_run_quarantined_series"]["samples"] == [({"reason": "non_finite_values"}, 2.0)]
    assert families["forecasting_run_fallback_series"]["samples"] == [({"reason": "quality_gate"}, 1.0)]
    loss = {s[0]["selection"]: s[1] for s in families["forecasting_run_backtest_scaled_quantile_loss_mean"]["samples"]}
    assert loss == pytest.approx({"winner": figures.vs_naive.mean_loss, "naive": figures.vs_naive.reference_mean_loss})
    stages = {s[0]["stage"]: s[1] for s in families["forecasting_run_stage_duration_seconds"]["samples"]}
    assert stages == {"prepare": 1.5, "train": 10.0}
    assert families["forecasting_run_info"]["samples"] == [({"as_of": "2025-12-28", "run_id": "20251228-abc"}, 1.0)]
    assert all(f["type"] == "gauge" and f["help"] for f in families.values())


def test_monitoring_figures_are_exported_beside_the_run():
    text = render(monitoring_metrics({"drift_flagged_series": 7, "live_coverage": 0.74, "live_loss_by_segment": {"A": 0.5}}))
    families = parse(text)
    assert families["forecasting_monitoring_drift_flagged_series"]["samples"] == [({}, 7.0)]
    assert families["forecasting_monitoring_live_coverage"]["samples"] == [({}, 0.74)]
    assert families["forecasting_monitoring_live_loss_by_segment"]["samples"] == [({"key": "A"}, 0.5)]


def test_label_values_are_escaped_and_bad_names_refused():
    text = render([Metric("x", "a help\nline").add(1, reason='quote " back \\ new\nline')])
    families = parse(text)
    assert families["forecasting_x"]["samples"][0][0]["reason"] == 'quote " back \\ new\nline'
    with pytest.raises(ValueError, match="invalid Prometheus metric name"):
        render([Metric("bad-name", "h").add(1)])
    with pytest.raises(ValueError, match="given twice"):
        render([Metric("x", "h"), Metric("x", "h")])
    assert parse(render([Metric("nan", "h").add(float("nan"))]))["forecasting_nan"]["samples"][0][1] != 0
