"""Key figures in the Prometheus text exposition format (version 0.0.4), for a node
exporter's textfile collector.

Two sources, one file: ``run_metrics`` (this run's figures) and ``monitoring_metrics``
(the retraining loop's figures, passed in as a plain mapping, see ``MONITORING_METRICS``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from forecasting.reporting.figures import RunFigures

PREFIX = "forecasting_"
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

# The retraining loop's figures: key of the mapping passed to monitoring_metrics -> (help, label).
# A value is a number, or a mapping label value -> number (then the metric has that one label).
MONITORING_METRICS: dict[str, tuple[str, str | None]] = {
    "drift_flagged_series": ("Series whose live loss exceeds their backtest loss (after hysteresis).", None),
    "retrain_triggered_series": ("Series sent to retraining by the last check.", None),
    "live_scaled_quantile_loss_mean": ("Mean scaled quantile loss of published forecasts against actuals.", None),
    "live_coverage": ("Share of actuals inside the published outer quantile interval.", None),
    "live_series_evaluated": ("Series with actuals to compare against their published forecast.", None),
    "check_timestamp_seconds": ("Unix time of the retraining loop's last check.", None),
}


@dataclass
class Metric:
    """One metric family: name (without the prefix), help, type and its samples."""

    name: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)
    type: str = "gauge"

    def add(self, value: float, **labels: str) -> Metric:
        self.samples.append((labels, float(value)))
        return self


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render(metrics: Iterable[Metric]) -> str:
    """The exposition text: HELP, TYPE, then one line per sample; families in the given order."""
    lines: list[str] = []
    seen: set[str] = set()
    for metric in metrics:
        name = PREFIX + metric.name
        if not _NAME.match(name):
            raise ValueError(f"invalid Prometheus metric name {name!r}")
        if name in seen:
            raise ValueError(f"metric {name} given twice")
        seen.add(name)
        lines.append(f"# HELP {name} {_escape_help(metric.help)}")
        lines.append(f"# TYPE {name} {metric.type}")
        for labels, value in metric.samples:
            for key in labels:
                if not _LABEL.match(key):
                    raise ValueError(f"invalid label name {key!r} on {name}")
            text = ",".join(f'{k}="{_escape_label(str(v))}"' for k, v in sorted(labels.items()))
            lines.append(f"{name}{{{text}}} {_number(value)}" if text else f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


def run_metrics(figures: RunFigures, as_of_timestamp: float, finished_timestamp: float) -> list[Metric]:
    """This run's figures. Every family is present (possibly with no samples) so alerts can rely on it."""
    run = {"run_id": figures.run_id}
    info = Metric("run_info", "The run these figures describe (value 1).").add(1, as_of=figures.as_of[:10], **run)
    series = Metric("run_series", "Series of the run by status (ok, fallback, new, ended, quarantined).")
    for status, n in figures.counts.items():
        series.add(n, status=status)
    quarantined = Metric("run_quarantined_series", "Quarantined series by reason.")
    for r in figures.quarantine_reasons:
        quarantined.add(r.n_series, reason=r.reason)
    fallback = Metric("run_fallback_series", "Series published by a fallback model, by reason.")
    for r in figures.fallback_reasons:
        fallback.add(r.n_series, reason=r.reason)
    models = Metric("run_published_series", "Series whose published forecast comes from each model.")
    for m in figures.models:
        if m.published:
            models.add(m.published, model=m.model)
    loss = Metric("run_backtest_scaled_quantile_loss_mean", "Mean backtest scaled quantile loss: selected winners and the naive baseline, same series.")
    if figures.vs_naive is not None:
        loss.add(figures.vs_naive.mean_loss, selection="winner").add(figures.vs_naive.reference_mean_loss, selection="naive")
    better = Metric("run_backtest_share_better_than_naive", "Share of series whose winner beats the naive baseline on the backtest.")
    if figures.vs_naive is not None:
        better.add(figures.vs_naive.share_better)
    coverage = Metric("run_backtest_coverage", "Backtest coverage of the outer quantile interval by the winners: observed mean and nominal.")
    if figures.coverage is not None:
        c = figures.coverage
        coverage.add(c.mean, interval=f"{c.lower}-{c.upper}", kind="observed").add(c.nominal, interval=f"{c.lower}-{c.upper}", kind="nominal")
    stages = Metric("run_stage_duration_seconds", "Wall time of each stage of the run.")
    for stage, seconds in figures.timings_seconds.items():
        stages.add(seconds, stage=stage)
    families = [info, series, quarantined, fallback, models, loss, better, coverage, stages]
    if figures.vs_previous is not None:
        previous = Metric("run_winner_changed_series", "Series whose backtest winner differs from the previous run's.")
        families.append(previous.add(figures.vs_previous.winner_changed or 0))
    families.append(Metric("run_as_of_timestamp_seconds", "Unix time of the run's forecast origin.").add(as_of_timestamp))
    families.append(Metric("run_finished_timestamp_seconds", "Unix time the report and metrics were written.").add(finished_timestamp))
    return families


def monitoring_metrics(figures: Mapping[str, float | Mapping[str, float]]) -> list[Metric]:
    """The retraining loop's figures as metrics ``forecasting_monitoring_<key>``.

    Keys of ``MONITORING_METRICS`` get their documented help; other keys are exported
    too (with a generic help) so a new figure needs no change here.
    """
    families = []
    for key, value in figures.items():
        help_text, label = MONITORING_METRICS.get(key, (f"Retraining loop figure {key}.", None))
        metric = Metric(f"monitoring_{key}", help_text)
        if isinstance(value, Mapping):
            for label_value, number in value.items():
                metric.add(number, **{label or "key": str(label_value)})
        else:
            metric.add(value)
        families.append(metric)
    return families
