"""The data contract: column names and the one helper that names quantile columns.

History is long format ``unique_id`` (str), ``ds`` (timestamp), ``y`` (float).
Backtest rows add ``cutoff``. The published forecast table is contract version 1.
"""

from __future__ import annotations

from collections.abc import Iterable

ID, TIME, TARGET, CUTOFF = "unique_id", "ds", "y", "cutoff"

SCHEMA_VERSION = 1
MAX_ID_LENGTH = 255  # characters of a series id; the SQL key column holds exactly this many

STATUS_OK = "ok"
STATUS_FALLBACK = "fallback"
STATUS_NEW = "new"
STATUS_QUARANTINED = "quarantined"
STATUS_ENDED = "ended"
STATUS_NOT_STARTED = "not_started"  # every row of the series lies after the as-of date
PUBLISHED_STATUSES = (STATUS_OK, STATUS_FALLBACK, STATUS_NEW)


def quantile_label(q: float) -> str:
    """Published column name of a quantile: 0.1 -> p10, 0.05 -> p5, 0.025 -> p2.5."""
    percent = round(q * 100, 6)
    text = f"{percent:f}".rstrip("0").rstrip(".")
    return f"p{text}"


def quantile_column(model: str, q: float) -> str:
    """Internal column of a model's quantile forecast: ('AutoETS', 0.1) -> 'AutoETS-p10'."""
    return f"{model}-{quantile_label(q)}"


def quantile_labels(quantiles: Iterable[float]) -> list[str]:
    return [quantile_label(q) for q in quantiles]


def forecast_table_columns(quantiles: Iterable[float]) -> list[str]:
    """Column order of the published forecast table (contract version 1)."""
    return [
        ID,
        "forecast_origin",
        TIME,
        "horizon",
        *quantile_labels(quantiles),
        "model",
        "status",
        "run_id",
        "model_version",
        "schema_version",
    ]
