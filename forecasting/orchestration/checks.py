"""``forecasting validate``: the validation and lifecycle report, without running models.

Its exit code is the one ``forecasting run`` would end with on the same input before any
model runs: 0, 2 (a frequency that does not fit the dates), 3 (an unreadable file) or 4
(the circuit breaker), so it serves as a pre-check in CI or a DAG.
"""

from __future__ import annotations

from typing import Any

from forecasting.config import Settings
from forecasting.data.frequency import require_fitting_frequency
from forecasting.data.lifecycle import classify_lifecycle
from forecasting.data.validation import (
    check_schema,
    default_as_of,
    validate_history,
    wall_clock_as_of,
)
from forecasting.errors import EXIT_CIRCUIT_BREAKER
from forecasting.models.params import check_model_settings
from forecasting.orchestration.run_input import load_input
from forecasting.orchestration.steps.prepare import min_backtest_length


def validate_only(settings: Settings) -> dict[str, Any]:
    """Validate the configured input; report quarantine reasons, repairs and lifecycle classes."""
    check_model_settings(settings)
    raw, source = load_input(settings)
    frame, notes = check_schema(raw)  # the schema first, as a run does
    as_of = wall_clock_as_of(settings.forecast.as_of) if settings.forecast.as_of else default_as_of(frame)
    require_fitting_frequency(frame["ds"], settings.forecast.freq, settings.data.time_col)
    report = validate_history(frame, settings.forecast.freq, as_of, settings.validation)
    lifecycle = classify_lifecycle(
        report.history, as_of, settings.forecast.freq, min_backtest_length(settings), settings.lifecycle
    )
    limit = settings.validation.max_quarantine_share
    tripped = report.quarantine_share > limit
    result: dict[str, Any] = {
        "source": source,
        "as_of": as_of.isoformat(),
        "freq": settings.forecast.freq,
        "n_input_series": report.n_input_series,
        "notes": notes,
        "not_started": int(len(report.not_started)),
        "trimmed_rows": report.trimmed_rows,
        "quarantined": int(len(report.quarantine)),
        "quarantine_share": round(report.quarantine_share, 4),
        "max_quarantine_share": limit,
        "circuit_breaker": "tripped" if tripped else "ok",
        "quarantine_reasons": {str(k): int(v) for k, v in report.quarantine["reason"].value_counts().items()},
        "quarantine_examples": report.quarantine.head(20).to_dict(orient="records"),
        "repairs": {str(k): int(v) for k, v in report.repairs.groupby("repair")["count"].sum().items()}
        if not report.repairs.empty
        else {},
        "lifecycle": {str(k): int(v) for k, v in lifecycle["lifecycle"].value_counts().items()},
    }
    if tripped:
        result["exit_code"] = EXIT_CIRCUIT_BREAKER
    return result
