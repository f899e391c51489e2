"""Run steps around the shards: prepare_run (before), finalize and publish (after).

Inputs and outputs are JSON-able (ids and paths); everything between steps goes
through files in the run folder, so each step can run in another process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecasting import __version__
from forecasting.activation.verdicts import activate_plugins
from forecasting.config import ConfigError, Settings
from forecasting.data.contract import (
    PUBLISHED_STATUSES,
    STATUS_ENDED,
    STATUS_NOT_STARTED,
    STATUS_QUARANTINED,
    quantile_labels,
)
from forecasting.data.database import database_engine
from forecasting.data.demo import generate_demo_panel
from forecasting.data.frequency import require_fitting_frequency
from forecasting.data.io import fingerprint, read_history
from forecasting.data.lifecycle import classify_lifecycle
from forecasting.data.sharding import assign_shards
from forecasting.data.validation import (
    DataSchemaError,
    check_circuit_breaker,
    check_schema,
    default_as_of,
    validate_history,
    wall_clock_as_of,
)
from forecasting.evaluation.windows import backtest_windows, min_train_length
from forecasting.models.catalog import installed_plugins
from forecasting.models.params import check_model_settings
from forecasting.orchestration.registration import switching_version, versioned_table
from forecasting.orchestration.run_catalog import Manifest, Run, RunFolder, runs_dir
from forecasting.orchestration.shards import read_shard_results
from forecasting.publishing.sql import SqlCommitPoint
from forecasting.publishing.table import (
    build_forecast_table,
    publish_table,
    recover_publications,
    write_atomic,
)
from forecasting.training.isolation import isolation_summary
from forecasting.training.selection_step import ShardResult

logger = logging.getLogger(__name__)

_VERSIONED_PACKAGES = ("statsforecast", "pandas", "numpy", "pyarrow", "pydantic")


def load_input(settings: Settings) -> tuple[pd.DataFrame, str]:
    if settings.data.path is None:
        demo = settings.demo
        panel = generate_demo_panel(demo.n_series, demo.n_periods, settings.forecast.freq, demo.end, demo.seed)
        return panel, f"demo(n_series={demo.n_series}, n_periods={demo.n_periods}, seed={demo.seed})"
    data = settings.data
    frame = read_history(data.path, data.id_col, data.time_col, data.target_col, data.date_format)
    return frame, str(Path(data.path).resolve())


def _results_relevant_settings(settings: Settings) -> dict[str, Any]:
    """Settings that change the rows a run produces (not where they go or how they are computed)."""
    return settings.model_dump(
        mode="json",
        exclude={
            # the shard layout stays: a shard's series are the pools calibration and the ensemble learn from
            "output": True, "compute": {"executor", "scheduler_address", "n_workers", "worker_memory_limit",
                                        "series_per_batch", "progress"},
            "data": {"path"}, "plugins": {"verdict_cache"},
            # where the input and outputs live and what happens after publishing
            "source": True, "database": True, "monitoring": True, "retention": True, "reporting": True,
            "registry": {"tracking_uri", "experiment"},
        },
    )


def plugin_versions(settings: Settings) -> dict[str, str]:
    """The distribution and version of every configured plug-in: ``{name: "dist==version"}``."""
    names = [c.name for c in settings.models.candidates] + list(settings.models.fallback)
    installed = installed_plugins()
    return {n: f"{installed[n].distribution}=={installed[n].version}" for n in sorted(set(names)) if n in installed}


def make_run_id(as_of: pd.Timestamp, data_fingerprint: str, settings: Settings, series: Sequence[str] | None) -> str:
    """Deterministic run id: the as-of date plus a hash of data, configuration, code versions and series subset."""
    content = json.dumps(
        {
            "data": data_fingerprint,
            "settings": _results_relevant_settings(settings),
            "plugins": plugin_versions(settings),
            "versions": _package_versions(),
            "series": sorted(series) if series else None,
            "covariates": _covariate_digests(settings),
        },
        sort_keys=True,
    )
    return f"{as_of:%Y%m%d}-{hashlib.sha256(content.encode()).hexdigest()[:12]}"


def _covariate_digests(settings: Settings) -> dict[str, str]:
    """Content hashes of the covariate files: editing one in place is different work."""
    files = {"path": settings.covariates.path, "static_path": settings.covariates.static_path}
    return {key: hashlib.sha256(Path(path).read_bytes()).hexdigest() for key, path in files.items() if path}


def _package_versions() -> dict[str, str]:
    versions = {"forecasting": __version__, "python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def min_backtest_length(settings: Settings) -> int:
    """Observations a series needs for one backtest window (fewer = lifecycle 'new')."""
    horizon, share, floor = settings.forecast.horizon, settings.backtest.min_train_share, settings.season_length
    length = horizon + 1
    while not backtest_windows(length, horizon, 1, settings.backtest_step, min_train_length(length, share, floor)):
        length += 1
    return length + int(np.ceil(settings.lifecycle.min_history_seasons * settings.season_length))


def prepare_run(settings: Settings, series: Sequence[str] | None = None) -> dict[str, Any]:
    """Read, validate, classify and shard the input; write it to a new run folder."""
    started_at = time.time()
    check_model_settings(settings)  # before any work: a model parameter out of range is a configuration error
    activate_plugins(settings)  # and so is a plug-in that fails the conformance kit
    raw, source = load_input(settings)
    if raw.empty:
        raise DataSchemaError(f"the input {source} has no rows")
    # The schema first: nothing reads a column before it is known to hold what the contract says.
    frame, notes = check_schema(raw)
    for note in notes:
        logger.warning("input %s: %s", source, note)
    # The default as-of date comes from the whole input, so a subset run forecasts from the
    # same origin as the full run it amends.
    as_of = wall_clock_as_of(settings.forecast.as_of) if settings.forecast.as_of else default_as_of(frame)
    if series:
        wanted = frame["unique_id"].isin({str(s) for s in series}).to_numpy()
        raw, frame = raw[wanted], frame[wanted]
        if raw.empty:
            raise ConfigError(f"series: none of the {len(series)} requested series is in the input {source}")

    require_fitting_frequency(frame["ds"], settings.forecast.freq, settings.data.time_col)
    report = validate_history(frame, settings.forecast.freq, as_of, settings.validation)
    if report.n_input_series == 0:
        raise DataSchemaError(f"no series has data at or before as_of {as_of:%Y-%m-%d} ({report.trimmed_rows} rows after it)")
    check_circuit_breaker(report, settings.validation.max_quarantine_share)
    # The forecast origin is the last period on the frequency grid at or before as_of: every
    # kept series ends there, and the forecasts start one period after it.
    if not report.history.empty:
        as_of = pd.Timestamp(report.history["ds"].max())
    data_fingerprint = fingerprint(raw)
    run_id = make_run_id(as_of, data_fingerprint, settings, series)
    folder = RunFolder(runs_dir(Path(settings.output.root).resolve()) / run_id)
    lifecycle = classify_lifecycle(
        report.history, as_of, settings.forecast.freq, min_backtest_length(settings), settings.lifecycle
    )
    n_shards = settings.shard_count(len(lifecycle))
    lifecycle["shard"] = assign_shards(lifecycle["unique_id"], n_shards)
    history = report.history.merge(lifecycle[["unique_id", "shard"]], on="unique_id")
    for shard, part in history.groupby("shard"):
        write_atomic(part.drop(columns="shard"), folder.shard_input(int(shard)))
    for shard, part in lifecycle.groupby("shard"):
        write_atomic(part.drop(columns="shard"), folder.shard_lifecycle(int(shard)))
    inputs = {"lifecycle": lifecycle, "quarantine": report.quarantine, "repairs": report.repairs,
              "not_started": report.not_started}
    for name, part in inputs.items():
        write_atomic(part, folder.input(name))

    shards = sorted(int(s) for s in history["shard"].unique())
    switching = _choose_switching_version(settings, folder, run_id)
    manifest = Manifest(
        run_id=run_id,
        as_of=as_of,
        started_at=round(started_at, 3),
        source=source,
        series_subset=sorted(series) if series else None,
        data_fingerprint=data_fingerprint,
        n_input_series=report.n_input_series,
        trimmed_rows=report.trimmed_rows,
        validation_notes=notes,
        shards=shards,
        n_shards=n_shards,
        settings=settings.model_dump(mode="json"),
        versions=_package_versions(),
        plugins=plugin_versions(settings),
        plugin_isolation=isolation_summary(settings),
        switching_version=switching,
    )
    folder.write_json(folder.manifest, manifest.to_json())
    return {"run_id": run_id, "run_dir": str(folder.path), "shards": shards}


def _choose_switching_version(settings: Settings, folder: RunFolder, run_id: str) -> str:
    """Create the registry store once, before any parallel work (a fresh SQLite store cannot be
    created concurrently), and choose the champion whose models the switching margin keeps.

    The champion is chosen once per run folder: a rerun keeps what its first attempt saw.
    Returns that champion's version ("" for none).
    """
    if not settings.registry.enabled:
        return ""
    from forecasting.registry.store import ensure_store

    ensure_store(settings)
    return switching_version(folder, settings, run_id)


def _leaderboard(scores: pd.DataFrame, ledger: pd.DataFrame) -> pd.DataFrame:
    """Mean backtest scores per series x candidate, ranked, with the winner flagged."""
    if scores.empty:  # typed: readers filter on is_winner and sort on the losses
        return _with_columns(scores.iloc[0:0], {"unique_id": "object", "candidate": "object", **_SCORE_COLUMNS,
                                               "n_windows": "int64", "rank": "int64", "is_winner": "bool"})
    board = (
        scores.groupby(["unique_id", "candidate"], sort=True)
        .agg(
            scaled_quantile_loss=("scaled_quantile_loss", "mean"),
            mase=("mase", "mean"),
            coverage=("coverage", "mean"),
            n_windows=("cutoff", "nunique"),
        )
        .reset_index()
    )
    winners = ledger.set_index("unique_id")["winner"]
    board["is_winner"] = board["candidate"].to_numpy() == board["unique_id"].map(winners).to_numpy()
    board["rank"] = board.groupby("unique_id")["scaled_quantile_loss"].rank(method="first").astype("int64")
    return board.sort_values(["unique_id", "rank"]).reset_index(drop=True)


_KEYS = {"unique_id": "object", "candidate": "object", "cutoff": "datetime64[ns]"}
_SCORE_COLUMNS = {"scaled_quantile_loss": "float64", "mase": "float64", "coverage": "float64"}


def _with_columns(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """An empty frame gets the columns (and types) its readers select; a non-empty one is kept as is."""
    if not frame.empty:
        return frame
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


def _quarantine_ledger(quarantine: pd.DataFrame) -> pd.DataFrame:
    frame = quarantine.copy()
    frame["status"] = STATUS_QUARANTINED
    return frame


def finalize(run: Run | str | Path, results: ShardResult | None = None) -> dict[str, Any]:
    """Combine the shards into the run's ledger, leaderboard, scores and forecasts.

    ``results``: the shards' combined results when the caller assembled them (for example
    with fallbacks for failed shards); by default every shard's checkpoint is read.
    """
    run = Run.of(run)
    folder, manifest, settings = run.folder, run.manifest, run.settings
    combined = results if results is not None else read_shard_results(folder, manifest.shards)
    quarantine = pd.read_parquet(folder.input("quarantine"))
    parts = [combined.ledger, _quarantine_ledger(quarantine)]
    if folder.input("not_started").exists():  # every input series is in the ledger, those after as_of too
        parts.append(pd.read_parquet(folder.input("not_started")).assign(status=STATUS_NOT_STARTED))
    ledger = pd.concat([p for p in parts if not p.empty] or parts[:1], ignore_index=True)
    ledger = ledger.sort_values("unique_id").reset_index(drop=True)
    for column in ("reason", "detail", "winner", "model", "ensemble_members", "repairs", "failures", "lifecycle",
                   "selection", "cost_skipped"):
        if column in ledger:
            ledger[column] = ledger[column].fillna("").astype(str)
    leaderboard = _leaderboard(combined.scores, ledger)
    table = build_forecast_table(
        combined.forecasts, manifest.as_of, folder.run_id, settings.forecast.quantiles
    )
    labels = quantile_labels(settings.forecast.quantiles)
    outputs = {
        "ledger": ledger,
        "leaderboard": leaderboard,
        # with their columns even when no series was backtested (a horizon longer than every history)
        "scores": _with_columns(combined.scores, {**_KEYS, **_SCORE_COLUMNS}),
        "backtest": _with_columns(combined.backtest, {**_KEYS, "ds": "datetime64[ns]", "y": "float64",
                                                      **dict.fromkeys(labels, "float64")}),
        "forecasts": table,
        "calibration": combined.calibration,
        "pools": combined.pools,
        "candidates": combined.candidates,
    }
    for name, frame in outputs.items():
        write_atomic(frame, folder.output(name))
    summary = summarize(ledger, leaderboard)
    estimate = out_of_sample_summary(combined.pools)
    if estimate:
        summary["out_of_sample"] = estimate
    coverage = coverage_summary(combined.calibration, settings.forecast.quantiles)
    if coverage:
        summary["calibration"] = coverage
    global_models = _global_models(folder, manifest.shards)
    if global_models:
        summary["global_models"] = global_models
    if manifest.plugin_isolation:
        summary["plugin_isolation"] = manifest.plugin_isolation
    summary.update(
        run_id=folder.run_id,
        as_of=manifest.as_of.isoformat(),
        **{name: str(folder.output(name)) for name in ("forecasts", "ledger", "leaderboard")},
    )
    folder.write_json(folder.summary, summary)
    return summary


def _global_models(folder: RunFolder, shards: Sequence[int]) -> dict[str, Any]:
    """Per shard, what each global candidate was fitted with (parameters, tuning, seconds)."""
    found = {}
    for shard in shards:
        marker = folder.global_done(shard)
        if marker.exists():
            found[str(shard)] = folder.read_json(marker)["models"]
    return found


def out_of_sample_summary(pools: pd.DataFrame) -> dict[str, Any]:
    """The selection procedure's own loss on the latest backtest window, chosen on the earlier ones.

    Means over the pools' series of the scaled quantile loss on that window: the procedure
    (``selected``), the ensemble, each single candidate; empty when no pool had two windows.
    """
    if pools.empty or "out_of_sample" not in pools:
        return {}
    parts = [json.loads(text) for text in pools["out_of_sample"] if text and text != "{}"]
    parts = [p for p in parts if p.get("n_series")]
    if not parts:
        return {}
    n = sum(p["n_series"] for p in parts)
    labels = [k for k in parts[0] if k not in ("n_series", "window", "switched_series")]

    def mean(key: str) -> float | None:
        pairs = [(p[key], p["n_series"]) for p in parts if key in p and p[key] is not None and np.isfinite(p[key])]
        weight = sum(w for _, w in pairs)
        return float(sum(v * w for v, w in pairs) / weight) if weight else None

    return {
        "what": "mean scaled quantile loss on each series' latest backtest window, of choices made on its earlier "
                "windows only (calibration, ensemble weights and selection included)",
        "n_series": int(n),
        "switched_series": int(sum(p.get("switched_series", 0) for p in parts)),
        "loss": {label: mean(label) for label in labels},
    }


def coverage_summary(calibration: pd.DataFrame, quantiles: Sequence[float]) -> dict[str, Any]:
    """Forward-only backtest coverage of the outermost quantile pair: per candidate, and per step of the ensemble."""
    if calibration.empty:
        return {}
    nominal = round(float(max(quantiles) - min(quantiles)), 6)
    weighted = calibration.assign(hits=calibration["coverage"] * calibration["n_windows"])
    weighted = weighted[weighted["n_windows"] > 0]
    by_candidate = weighted.groupby("candidate")[["hits", "n_windows"]].sum()
    per_candidate = (by_candidate["hits"] / by_candidate["n_windows"]).dropna()
    ensemble = weighted[weighted["candidate"] == "Ensemble"].groupby("step")[["hits", "n_windows"]].sum()
    return {
        "nominal": nominal,
        "coverage_by_candidate": {str(k): round(float(v), 4) for k, v in per_candidate.items()},
        "ensemble_coverage_by_step": {int(k): round(float(v), 4) for k, v in (ensemble["hits"] / ensemble["n_windows"]).dropna().items()},
    }


def summarize(ledger: pd.DataFrame, leaderboard: pd.DataFrame) -> dict[str, Any]:
    """Counts by status, the winner mix, and the winners' in-sample backtest loss against the naive baseline."""
    counts = {str(k): int(v) for k, v in ledger["status"].value_counts().sort_index().items()}
    models = ledger["model"].fillna("") if "model" in ledger else pd.Series(dtype=object)
    winner_mix = {str(k): int(v) for k, v in models[models != ""].value_counts().items()}
    summary: dict[str, Any] = {"counts": counts, "winner_mix": winner_mix, "n_series": int(len(ledger))}
    if not leaderboard.empty:
        winners = leaderboard[leaderboard["is_winner"]].set_index("unique_id")["scaled_quantile_loss"]
        naive = leaderboard[leaderboard["candidate"] == "Naive"].set_index("unique_id")["scaled_quantile_loss"]
        both = winners.index.intersection(naive.index)
        if len(both):
            summary["backtest_loss"] = {
                "what": "in sample: the mean loss of each series' choice on the very windows that chose it",
                "series_compared": int(len(both)),
                "winner_mean_scaled_quantile_loss": float(winners[both].mean()),
                "naive_mean_scaled_quantile_loss": float(naive[both].mean()),
            }
    return summary


def publish(run: Run | str | Path) -> dict[str, Any]:
    """Publish the run's forecasts: the SQL table (the commit point, when enabled), then the Parquet
    table of its origin.

    A series this run could not forecast (quarantined) keeps the rows an earlier run of the same
    origin published: the ledger marks them stale. Ended series lose theirs.
    """
    run = Run.of(run)
    folder, settings = run.folder, run.settings
    # stamped with the registered version; the champion's forecasts when this run is only challenger
    table, source = versioned_table(run, pd.read_parquet(folder.output("forecasts")))
    ledger = pd.read_parquet(folder.output("ledger"))
    replaceable = ledger.loc[ledger["status"].isin([*PUBLISHED_STATUSES, STATUS_ENDED]), "unique_id"].astype(str)
    as_of = run.manifest.as_of
    commit_point = None
    if settings.database.enabled:
        commit_point = SqlCommitPoint(database_engine(settings), settings.database.forecast_table,
                                      settings.forecast.quantiles)
    recover_publications(folder.output_root, commit_point)
    published = publish_table(table, folder.output_root, replaceable.tolist(), as_of, commit_point)
    stale = _mark_published(folder, ledger, set(replaceable), published.table)
    result: dict[str, Any] = {"published": str(published.path), "rows": int(len(table)),
                              "publication": published.publication, **source}
    if published.sql_rows is not None:
        result["sql_rows"] = published.sql_rows
    if stale:
        result["stale_series"] = stale
    return result


def _mark_published(folder: RunFolder, ledger: pd.DataFrame, replaced: set[str], merged: pd.DataFrame) -> int:
    """The ledger's ``published`` column: yes (this run's rows), stale (an earlier run's rows kept), no."""
    runs = merged.drop_duplicates("unique_id").set_index("unique_id")["run_id"]
    ids = ledger["unique_id"].astype(str)
    kept = ~ids.isin(replaced) & ids.isin(runs.index)
    marks = pd.Series("no", index=ledger.index, dtype=object)
    marks[ids.isin(replaced) & ids.isin(runs.index)] = "yes"
    marks[kept] = "stale: the rows of run " + ids[kept].map(runs).astype(str) + " are kept"
    write_atomic(ledger.assign(published=marks), folder.output("ledger"))
    return int(kept.sum())
