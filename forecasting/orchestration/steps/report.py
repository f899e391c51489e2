"""The report task (after publish): read a run folder, hand its frames to forecasting.reporting.

Writes ``report.html`` (self-contained) and ``metrics.prom`` (Prometheus text format) into
the run folder, adds their paths to ``summary.json``, and closes the run's MLflow run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from forecasting.config import Settings
from forecasting.data.contract import ID, quantile_labels
from forecasting.orchestration.run_catalog import (
    Manifest,
    Run,
    RunFolder,
    finished_runs,
    read_series,
    series_history,
    write_text_atomic,
)
from forecasting.orchestration.stage_times import REPORT_STAGE, record_stage_time, stage_times
from forecasting.orchestration.steps.register import decision_lines
from forecasting.reporting import prometheus
from forecasting.reporting.figures import changed_winners, collect_figures, figures_summary
from forecasting.reporting.report import SeriesSample, render_report
from forecasting.reporting.sampling import choose_samples

logger = logging.getLogger(__name__)

TEXTFILE_NAME = "forecasting.prom"


def _champion_run(folder: RunFolder, settings: Settings, registration: dict[str, Any] | None) -> Path | None:
    """The run folder of the champion this run was compared with, while retention keeps it."""
    version = (registration or {}).get("decision", {}).get("compared_with_version")
    if not version:
        return None
    from forecasting.registry.versions import pipeline_run_id

    run_id = pipeline_run_id(settings, version)
    champion = RunFolder.under(folder.output_root, run_id)
    return champion.path if run_id and champion.output("ledger").exists() else None


def report_task(run_dir: str) -> dict[str, Any]:
    """The run's HTML report and Prometheus metrics, attached to its MLflow run when it has one.

    "The previous run" it compares with is the champion's run when the registry knows one,
    otherwise the newest earlier run under the output root.

    Comes after publishing, so a failing report is logged and returned as ``report_error``,
    never raised: the forecasts are already out.
    """
    run = Run.load(run_dir)
    folder, settings = run.folder, run.settings
    registration = folder.read_json(folder.registration) if folder.registration.exists() else None
    if not settings.reporting.enabled:
        _finish_tracking(folder, settings, registration)
        return {}
    try:
        reported = write_report(run, previous_run_dir=_champion_run(folder, settings, registration))
        if registration:
            from forecasting.registry.tracking import attach_files

            attach_files(settings, registration["mlflow_run_id"],
                         [Path(reported["report"]), Path(reported["metrics"])], "report")
    except Exception as exc:
        logger.exception("run %s: the report failed", folder.run_id)
        return {"report_error": f"{type(exc).__name__}: {exc}"}
    _finish_tracking(folder, settings, registration)
    return {k: v for k, v in reported.items() if k != "report_figures"}


def _finish_tracking(folder: RunFolder, settings: Settings, registration: dict[str, Any] | None) -> None:
    """End the run's MLflow run now, with the stage times (not for a rerun that reused a version)."""
    if not registration or registration.get("reused"):
        return
    from forecasting.registry.tracking import finish_run

    path = folder.timings
    try:
        finish_run(settings, registration["mlflow_run_id"], folder.read_json(path) if path.exists() else {})
    except Exception:  # the forecasts are out; a tracking hiccup is logged, not raised
        logger.exception("run %s: closing its MLflow run failed", folder.run_id)


def previous_run(run: Run | str | Path) -> RunFolder | None:
    """The most recent earlier finished run under the same output root covering the same series.

    Earlier: an earlier as-of date, or the same one prepared before this run. Same series:
    the same series subset, or a full run (which covers every subset). The registry's champion
    can replace this lookup; the report takes whichever run folder it is given.
    """
    folder = run.folder if isinstance(run, Run) else RunFolder(Path(run))
    manifest = run.manifest if isinstance(run, Run) else folder.read_manifest()
    as_of, subset, prepared = manifest.as_of, manifest.series_subset, folder.manifest.stat().st_mtime
    best: tuple[pd.Timestamp, float, RunFolder] | None = None
    for other in finished_runs(folder.output_root):
        if other.path.resolve() == folder.path.resolve():
            continue
        content = other.read_manifest()
        other_as_of, other_prepared = content.as_of, other.manifest.stat().st_mtime
        if content.series_subset not in (None, subset):
            continue
        if other_as_of > as_of or (other_as_of == as_of and other_prepared >= prepared):
            continue
        if best is None or (other_as_of, other_prepared) > best[:2]:
            best = (other_as_of, other_prepared, other)
    return best[2] if best else None


def _winners_backtest(path: Path, leaderboard: pd.DataFrame, quantiles: Sequence[float]) -> pd.DataFrame:
    """The backtest rows of each series' winner, with the outer quantiles (what the coverage figures
    read), read in record batches: the whole backtest, a run's largest frame, is never held."""
    outer = quantile_labels([min(quantiles), max(quantiles)]) if quantiles else []
    columns = [ID, "candidate", "cutoff", "ds", "y", *outer]
    if leaderboard.empty or not path.exists():
        return pd.DataFrame(columns=columns)
    # looked up by id (its hash table built once), not merged per batch: a merge would rebuild it for every batch
    winner_of = leaderboard.loc[leaderboard["is_winner"]].set_index(ID)["candidate"]
    source = pq.ParquetFile(path)
    present = [c for c in columns if c in source.schema_arrow.names]
    parts = []
    for batch in source.iter_batches(columns=present):
        rows = batch.to_pandas()
        parts.append(rows[(rows[ID].map(winner_of) == rows["candidate"]).to_numpy()])
    return pd.concat(parts, ignore_index=True) if parts else pd.read_parquet(path, columns=present)


def _volume(folder: RunFolder, shards: Sequence[int]) -> pd.Series:
    """Mean demand per series (what 'largest' means for the sample charts)."""
    # shard by shard: a series lies in one shard, and the whole input is never held
    parts = [pd.read_parquet(folder.shard_input(s), columns=[ID, "y"]).groupby(ID)["y"].mean() for s in shards]
    if not parts:
        return pd.Series(dtype=float)
    return pd.concat(parts).sort_index()


def _samples(folder: RunFolder, manifest: Manifest, ledger: pd.DataFrame, leaderboard: pd.DataFrame,
             changed: Sequence[str], cap: int, history_periods: int) -> list[SeriesSample]:
    chosen = choose_samples(ledger, leaderboard, _volume(folder, manifest.shards), changed, cap)
    if not chosen:
        return []
    ids = list(chosen)
    history = series_history(folder, ids)
    forecasts = read_series(folder.output("forecasts"), ids)
    rows = ledger.set_index(ID)
    samples = []
    for series, why in chosen.items():
        own = history[history[ID] == series].sort_values("ds").tail(history_periods)
        forecast = forecasts[forecasts[ID] == series].sort_values("ds")
        if forecast.empty:
            continue
        samples.append(SeriesSample(series, why, str(rows.at[series, "model"]), str(rows.at[series, "status"]), own, forecast))
    return samples


def write_report(
    run: Run | str | Path,
    previous_run_dir: str | Path | None = None,
    monitoring: Mapping[str, float | Mapping[str, float]] | None = None,
    find_previous: bool = True,
) -> dict[str, Any]:
    """Write the run's HTML report and Prometheus metrics; add their paths to summary.json.

    ``previous_run_dir``: the run to compare with (default: ``previous_run``, unless
    ``find_previous`` is False). ``monitoring``: the retraining loop's figures
    (``prometheus.MONITORING_METRICS``), exported beside the run's.
    """
    started = time.perf_counter()
    run = Run.of(run)
    folder, manifest, settings = run.folder, run.manifest, run.settings
    ledger = pd.read_parquet(folder.output("ledger"))
    leaderboard = pd.read_parquet(folder.output("leaderboard"))
    quantiles = settings.forecast.quantiles
    backtest = _winners_backtest(folder.output("backtest"), leaderboard, quantiles)
    previous = None
    if previous_run_dir is None and find_previous:
        found = previous_run(run)
        previous_run_dir = found.path if found else None
    if previous_run_dir is not None:
        before = RunFolder(Path(previous_run_dir))
        previous = (before.run_id, pd.read_parquet(before.output("ledger")), pd.read_parquet(before.output("leaderboard")))
    summary = folder.read_json(folder.summary) if folder.summary.exists() else {}
    registration = folder.registration
    labels: dict[str, list[str]] = {}
    for candidate in settings.models.candidates:
        labels.setdefault(candidate.name, []).append(candidate.label)
    figures = collect_figures(
        folder.run_id, manifest.as_of.isoformat(), ledger, leaderboard, quantiles, backtest, stage_times(folder), previous,
        configured=[c.label for c in settings.models.candidates],
        plugins={"isolation": manifest.plugin_isolation, "versions": manifest.plugins, "labels": labels},
        decision=folder.read_json(registration) if registration.exists() else None,
        out_of_sample=summary.get("out_of_sample"),
        calibration=pd.read_parquet(folder.output("calibration")) if folder.output("calibration").exists() else None,
    )
    changed = list(changed_winners(ledger, previous[1])) if previous else []
    samples = _samples(folder, manifest, ledger, leaderboard, changed, settings.reporting.max_fan_charts,
                       settings.reporting.history_periods)
    context = {"source": manifest.source, "candidates": len(settings.models.candidates),
               "backtest windows": settings.backtest.n_windows, "horizon": settings.forecast.horizon,
               **decision_lines(folder)}
    html = render_report(figures, samples, quantiles, context, started=started)
    report_path, metrics_path = folder.report, folder.metrics
    write_text_atomic(report_path, html)

    families = prometheus.run_metrics(figures, manifest.as_of.timestamp(), time.time())
    if monitoring:
        families += prometheus.monitoring_metrics(monitoring)
    text = prometheus.render(families)
    write_text_atomic(metrics_path, text)
    result: dict[str, Any] = {"report": str(report_path), "metrics": str(metrics_path)}
    if settings.reporting.textfile_dir is not None:
        textfile = Path(settings.reporting.textfile_dir) / TEXTFILE_NAME
        write_text_atomic(textfile, text)
        result["metrics_textfile"] = str(textfile)
    result["report_figures"] = figures_summary(figures)
    if previous:
        result["previous_run"] = previous[0]
    summary = folder.read_json(folder.summary) if folder.summary.exists() else {}
    timings = dict(figures.timings_seconds)
    timings[REPORT_STAGE] = round(time.perf_counter() - started, 3)
    record_stage_time(folder.path, REPORT_STAGE, timings[REPORT_STAGE])
    summary.update({k: v for k, v in result.items() if k != "report_figures"}, timings_seconds=timings)
    folder.write_json(folder.summary, summary)
    return result
