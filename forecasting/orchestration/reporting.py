"""The report step (after publish) and ``explain``: read a run folder, hand frames to forecasting.reporting.

Writes ``report.html`` (self-contained) and ``metrics.prom`` (Prometheus text format) into
the run folder, and adds their paths to ``summary.json``. Stage wall times are recorded by
whoever runs the stages (``record_stage_time``) into ``timings.json``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from forecasting.config import ConfigError
from forecasting.data.contract import STATUS_NOT_STARTED, STATUS_QUARANTINED, quantile_labels
from forecasting.orchestration.registration import decision_lines
from forecasting.orchestration.run_catalog import Manifest, Run, RunFolder, finished_runs, runs_dir
from forecasting.reporting import explain as explaining
from forecasting.reporting import prometheus
from forecasting.reporting.figures import changed_winners, collect_figures, figures_summary
from forecasting.reporting.report import SeriesSample, render_report
from forecasting.reporting.sampling import choose_samples

TEXTFILE_NAME = "forecasting.prom"
REPORT_STAGE = "report"
STAGES = ("prepare", "train", "finalize", "publish", REPORT_STAGE)


def record_stage_time(run_dir: str | Path, stage: str, seconds: float) -> None:
    """Add one stage's wall time to the run's timings.json (a rerun of the stage overwrites it)."""
    folder = RunFolder(Path(run_dir))
    timings = folder.read_json(folder.timings) if folder.timings.exists() else {}
    timings[stage] = round(float(seconds), 3)
    folder.write_json(folder.timings, timings)


def _timings(folder: RunFolder) -> dict[str, float]:
    """Recorded stage times in run order (timings.json itself is written with sorted keys)."""
    path = folder.timings
    timings = {str(k): float(v) for k, v in folder.read_json(path).items()} if path.exists() else {}
    order = {stage: i for i, stage in enumerate(STAGES)}
    return dict(sorted(timings.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))


def previous_run(run_dir: str | Path) -> RunFolder | None:
    """The most recent earlier finished run under the same output root covering the same series.

    Earlier: an earlier as-of date, or the same one prepared before this run. Same series:
    the same series subset, or a full run (which covers every subset). The registry's champion
    can replace this lookup; the report takes whichever run folder it is given.
    """
    folder = RunFolder(Path(run_dir))
    manifest = Manifest.from_json(folder.read_json(folder.manifest))
    as_of, subset, prepared = manifest.as_of, manifest.series_subset, folder.manifest.stat().st_mtime
    best: tuple[pd.Timestamp, float, RunFolder] | None = None
    for other in finished_runs(folder.output_root):
        if other.path.resolve() == folder.path.resolve():
            continue
        content = Manifest.from_json(other.read_json(other.manifest))
        other_as_of, other_prepared = content.as_of, other.manifest.stat().st_mtime
        if content.series_subset not in (None, subset):
            continue
        if other_as_of > as_of or (other_as_of == as_of and other_prepared >= prepared):
            continue
        if best is None or (other_as_of, other_prepared) > best[:2]:
            best = (other_as_of, other_prepared, other)
    return best[2] if best else None


def _read_series(path: Path, series: Sequence[str], columns: list[str] | None = None) -> pd.DataFrame:
    return pd.read_parquet(path, columns=columns, filters=[("unique_id", "in", list(series))]) if series else pd.DataFrame()


def _history(folder: RunFolder, series: Sequence[str]) -> pd.DataFrame:
    """Clean history of some series, read from their shards' input files only."""
    lifecycle = pd.read_parquet(folder.input("lifecycle"), columns=["unique_id", "shard"])
    shards = lifecycle.loc[lifecycle["unique_id"].isin(series), "shard"].unique()
    parts = [_read_series(folder.shard_input(int(s)), series, ["unique_id", "ds", "y"]) for s in sorted(shards)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["unique_id", "ds", "y"])


def _volume(folder: RunFolder, shards: Sequence[int]) -> pd.Series:
    """Mean demand per series (what 'largest' means for the sample charts)."""
    parts = [pd.read_parquet(folder.shard_input(s), columns=["unique_id", "y"]) for s in shards]
    if not parts:
        return pd.Series(dtype=float)
    return pd.concat(parts, ignore_index=True).groupby("unique_id")["y"].mean()


def _samples(folder: RunFolder, manifest: Manifest, ledger: pd.DataFrame, leaderboard: pd.DataFrame,
             changed: Sequence[str], cap: int, history_periods: int) -> list[SeriesSample]:
    chosen = choose_samples(ledger, leaderboard, _volume(folder, manifest.shards), changed, cap)
    if not chosen:
        return []
    ids = list(chosen)
    history = _history(folder, ids)
    forecasts = _read_series(folder.output("forecasts"), ids)
    rows = ledger.set_index("unique_id")
    samples = []
    for series, why in chosen.items():
        own = history[history["unique_id"] == series].sort_values("ds").tail(history_periods)
        forecast = forecasts[forecasts["unique_id"] == series].sort_values("ds")
        if forecast.empty:
            continue
        samples.append(SeriesSample(series, why, str(rows.at[series, "model"]), str(rows.at[series, "status"]), own, forecast))
    return samples


def write_text_atomic(path: Path, text: str) -> None:
    """Atomic write (a textfile collector must never read a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


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
    backtest_columns = ["unique_id", "candidate", "cutoff", "ds", "y", *quantile_labels(quantiles)]
    backtest = pd.read_parquet(folder.output("backtest"), columns=backtest_columns)
    previous = None
    if previous_run_dir is None and find_previous:
        found = previous_run(folder.path)
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
        folder.run_id, manifest.as_of.isoformat(), ledger, leaderboard, quantiles, backtest, _timings(folder), previous,
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


def newest_run(output_root: str | Path) -> RunFolder:
    """The most recently prepared finished run under an output root."""
    root = Path(output_root).resolve()
    finished = finished_runs(root)
    if not finished:
        raise ConfigError(f"no finished run under {runs_dir(root)}: run `forecasting run` first, or pass the output root with --output")
    return max(finished, key=lambda folder: folder.manifest.stat().st_mtime)


def _series_frames(folder: RunFolder, series_id: str) -> dict[str, pd.DataFrame]:
    leaderboard = _read_series(folder.output("leaderboard"), [series_id])
    scores = _read_series(folder.output("scores"), [series_id])
    per_window = (scores.pivot_table(index="candidate", columns="cutoff", values="scaled_quantile_loss")
                  if not scores.empty else pd.DataFrame())
    top = leaderboard.sort_values("rank")["candidate"].head(explaining.TOP_CANDIDATES).tolist()
    backtest = _read_series(folder.output("backtest"), [series_id])
    backtest = backtest[backtest["candidate"].isin(top)] if not backtest.empty else backtest
    return {
        "leaderboard": leaderboard.drop(columns="unique_id", errors="ignore"),
        "per_window": per_window,
        "backtest": backtest,
        "history": _history(folder, [series_id]),
        "forecast": _read_series(folder.output("forecasts"), [series_id]),
    }


def explain(series_id: str, output_dir: str | Path | None = None, output_root: str | Path = "output",
            run_id: str | None = None, fmt: str = "html") -> dict[str, Any]:
    """Write why ``series_id`` got its forecast in a run (default: the newest) to ``output_dir``
    (default: the run folder)."""
    if fmt not in ("html", "png"):
        raise ConfigError(f"explain: format must be html or png, got {fmt!r}")
    if run_id is not None:
        runs = runs_dir(Path(output_root).resolve())
        folder = RunFolder(runs / run_id)
        if Path(run_id).name != run_id or run_id in (".", "..") or folder.path.resolve().parent != runs:
            raise ConfigError(f"explain: {run_id!r} is not a run id (a folder name under {runs}); "
                              "to explain a run under another output root, pass --output")
        if not folder.is_finished:
            raise ConfigError(f"explain: no finished run {run_id} under {runs}")
    else:
        folder = newest_run(output_root)
    settings = Run.load(folder.path).settings
    ledger = _read_series(folder.output("ledger"), [series_id])
    if ledger.empty:
        raise ConfigError(f"explain: series {series_id!r} is not in run {folder.run_id} (neither trained nor quarantined)")
    row = {k: (None if isinstance(v, float) and pd.isna(v) else v) for k, v in ledger.iloc[0].to_dict().items()}
    if row["status"] in (STATUS_QUARANTINED, STATUS_NOT_STARTED):
        frames: dict[str, pd.DataFrame] = {"leaderboard": pd.DataFrame(columns=["candidate", "rank", "n_windows"]),
                                           "per_window": pd.DataFrame()}
    else:
        frames = _series_frames(folder, series_id)
    explanation = explaining.SeriesExplanation(series_id, folder.run_id, row, **frames)
    output = Path(output_dir) if output_dir is not None else folder.path
    output.mkdir(parents=True, exist_ok=True)
    path = folder.explanation(output, series_id, fmt)
    if fmt == "png":
        path.write_bytes(explaining.render_png(explanation, settings.forecast.quantiles))
    else:
        path.write_text(explaining.render_html(explanation, settings.forecast.quantiles), encoding="utf-8")
    return {"series": series_id, "run_id": folder.run_id, "status": explanation.status,
            "winner": explanation.winner, "model": explanation.model, "margin": explanation.margin(),
            "verdict": explanation.verdict(), "path": str(path)}
