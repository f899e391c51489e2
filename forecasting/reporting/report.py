"""The run report: one self-contained HTML file (charts embedded as data URIs)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from forecasting.data.contract import quantile_label
from forecasting.reporting import charts
from forecasting.reporting.figures import RunFigures


@dataclass(frozen=True)
class SeriesSample:
    """One series drawn in the report: its history tail and its published forecast."""

    unique_id: str
    why: list[str]
    model: str
    status: str
    history: pd.DataFrame  # ds, y
    forecast: pd.DataFrame  # ds and the quantile columns (p10, p50, p90, ...)


def template_environment() -> Environment:
    return Environment(
        loader=PackageLoader("forecasting.reporting", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def non_negative(history: pd.DataFrame) -> bool:
    """Whether a series' history has no negative value (demand): its bands are drawn from 0 up."""
    return "y" in history and not history.empty and bool((history["y"].dropna() >= 0).all())


def forecast_band(forecast: pd.DataFrame, quantiles: Sequence[float], label: str, floor: float | None = None) -> charts.Band:
    """The outer quantiles and the median of a forecast; clipped at ``floor`` when given."""
    levels = sorted(quantiles)

    def column(q: float) -> np.ndarray:
        values = forecast[quantile_label(q)].to_numpy(float)
        return values if floor is None else np.maximum(values, floor)

    return charts.Band(
        label=label,
        ds=forecast["ds"].to_numpy(),
        lower=column(levels[0]),
        median=column(0.5),
        upper=column(levels[-1]),
    )


def _fan(sample: SeriesSample, quantiles: Sequence[float]) -> str:
    title = f"{sample.unique_id}: {sample.model} ({sample.status}); chosen as {', '.join(sample.why)}"
    band = forecast_band(sample.forecast, quantiles, f"{sample.model} p50", 0.0 if non_negative(sample.history) else None)
    return charts.data_uri(charts.fan_chart(title, sample.history, [band]))


def _charts(figures: RunFigures) -> dict[str, str]:
    out: dict[str, str] = {}
    if figures.vs_naive is not None:
        out["vs_naive"] = charts.data_uri(
            charts.histogram(
                figures.vs_naive.ratios, "Winner loss / naive loss per series (clipped at 3)", "ratio (< 1: better than naive)",
                reference=1.0, clip=(0.0, 3.0),
            )
        )
    if figures.vs_previous is not None:
        out["vs_previous"] = charts.data_uri(
            charts.histogram(
                figures.vs_previous.ratios, "Winner loss / previous run's winner loss (clipped at 3)", "ratio (< 1: better than before)",
                reference=1.0, clip=(0.0, 3.0),
            )
        )
    if figures.coverage is not None:
        c = figures.coverage
        out["coverage"] = charts.data_uri(
            charts.histogram(c.per_series, f"{c.lower}-{c.upper} coverage per series", "share of actuals inside", reference=c.nominal, bins=20)
        )
        if c.by_horizon:
            out["coverage_by_horizon"] = charts.data_uri(
                charts.line_chart(c.by_horizon, f"{c.lower}-{c.upper} coverage by horizon", "horizon", "coverage", reference=c.nominal)
            )
    if figures.models:
        top = {m.model: m.published for m in figures.models[:15]}
        out["models"] = charts.data_uri(charts.bar_chart(top, "Series per published model", "series"))
    return out


def render_report(
    figures: RunFigures,
    samples: Sequence[SeriesSample],
    quantiles: Sequence[float],
    context: Mapping[str, object] | None = None,
    started: float | None = None,
) -> str:
    """The report's HTML. ``context``: extra key/value lines shown in the header (source, settings).

    ``started``: when the report stage began (``time.perf_counter()``): the stage table then shows
    the report's own time up to its last chart.
    """
    template = template_environment().get_template("report.html.j2")
    drawn = _charts(figures)
    fans = [(s, _fan(s, quantiles)) for s in samples]
    if started is not None:
        figures.timings_seconds["report"] = round(time.perf_counter() - started, 3)
    if figures.timings_seconds:
        drawn["timings"] = charts.data_uri(charts.bar_chart(figures.timings_seconds, "Wall time per stage", "seconds"))
    return template.render(
        f=figures,
        charts=drawn,
        fans=fans,
        context=dict(context or {}),
        total_time=float(np.sum(list(figures.timings_seconds.values()))) if figures.timings_seconds else None,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )
