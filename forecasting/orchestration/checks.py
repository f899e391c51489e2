"""``forecasting validate``: the validation and lifecycle report, without running models."""

from __future__ import annotations

from typing import Any

from forecasting.config import Settings
from forecasting.data.lifecycle import classify_lifecycle
from forecasting.data.validation import (
    check_schema,
    default_as_of,
    validate_history,
    wall_clock_as_of,
)
from forecasting.models.params import check_model_settings
from forecasting.orchestration.pipeline import load_input, min_backtest_length


def validate_only(settings: Settings) -> dict[str, Any]:
    """Validate the configured input; report quarantine reasons, repairs and lifecycle classes."""
    check_model_settings(settings)
    raw, source = load_input(settings)
    frame, notes = check_schema(raw)  # the schema first, as a run does
    as_of = wall_clock_as_of(settings.forecast.as_of) if settings.forecast.as_of else default_as_of(frame)
    report = validate_history(frame, settings.forecast.freq, as_of, settings.validation)
    lifecycle = classify_lifecycle(
        report.history, as_of, settings.forecast.freq, min_backtest_length(settings), settings.lifecycle
    )
    limit = settings.validation.max_quarantine_share
    return {
        "source": source,
        "as_of": as_of.isoformat(),
        "n_input_series": report.n_input_series,
        "notes": notes,
        "not_started": int(len(report.not_started)),
        "trimmed_rows": report.trimmed_rows,
        "quarantined": int(len(report.quarantine)),
        "quarantine_share": round(report.quarantine_share, 4),
        "circuit_breaker": "tripped" if report.quarantine_share > limit else "ok",
        "quarantine_reasons": {str(k): int(v) for k, v in report.quarantine["reason"].value_counts().items()},
        "quarantine_examples": report.quarantine.head(20).to_dict(orient="records"),
        "repairs": {str(k): int(v) for k, v in report.repairs.groupby("repair")["count"].sum().items()}
        if not report.repairs.empty
        else {},
        "lifecycle": {str(k): int(v) for k, v in lifecycle["lifecycle"].value_counts().items()},
    }
