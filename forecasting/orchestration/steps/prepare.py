"""The prepare task: the run's settings and input, validated, classified and sharded into a new run folder.

The run id is deterministic (the as-of date and a hash of the input, the settings that change the
results, the code and plug-in versions and the series subset), so the same work finds the same folder.
"""

from __future__ import annotations

import hashlib
import json
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
from forecasting.config import Settings
from forecasting.data.contract import ID
from forecasting.data.lifecycle import classify_lifecycle
from forecasting.data.sharding import assign_shards
from forecasting.data.validation import (
    DataSchemaError,
    check_circuit_breaker,
)
from forecasting.evaluation.windows import backtest_windows, min_train_length
from forecasting.models.catalog import installed_plugins
from forecasting.models.params import check_model_settings
from forecasting.orchestration.input_scan import ShardInputWriter, input_parts, scan_input
from forecasting.orchestration.run_catalog import Manifest, RunFolder, runs_dir
from forecasting.orchestration.run_input import (
    dated_source,
    run_settings,
    with_snapshot,
)
from forecasting.orchestration.stage_times import record_stage_time
from forecasting.orchestration.steps.register import switching_version
from forecasting.publishing.table import write_atomic
from forecasting.training.isolation import isolation_summary


def prepare_task(
    config: str | None, as_of: str | None, series: Sequence[str] | None = None, scheduled: str | None = None
) -> dict[str, Any]:
    """The DAG's prepare task: the run's settings from ``config``, then ``prepare``: ``{run_id, run_dir, shards}``.

    ``as_of`` given wins; otherwise ``scheduled`` (the run's logical date) is the as-of date of
    a dated source, while a fixed file (or the demo panel) forecasts from its own last date.
    """
    if not as_of and scheduled and dated_source(config):
        as_of = scheduled
    return prepare(run_settings(config, as_of), series)


def prepare(settings: Settings, series: Sequence[str] | None = None) -> dict[str, Any]:
    """The prepare step of every run: the as-of date's snapshot of a dated source (``with_snapshot``),
    then validate and shard it into a new run folder (``create_run_folder``): ``{run_id, run_dir, shards}``."""
    started = time.perf_counter()
    prepared = create_run_folder(with_snapshot(settings), list(series) if series else None)
    record_stage_time(prepared["run_dir"], "prepare", time.perf_counter() - started)
    return prepared


_VERSIONED_PACKAGES = ("statsforecast", "pandas", "numpy", "pyarrow", "pydantic")


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


def create_run_folder(settings: Settings, series: Sequence[str] | None = None) -> dict[str, Any]:
    """Read, validate, classify and shard the input, part by part; write it to a new run folder."""
    started_at = time.time()
    check_model_settings(settings)  # before any work: a model parameter out of range is a configuration error
    activate_plugins(settings)  # and so is a plug-in that fails the conformance kit
    parts, source = input_parts(settings)
    # The schema first: nothing reads a column before it is known to hold what the contract says.
    scan = scan_input(parts, source, settings, series)
    report, as_of = scan.report, scan.as_of
    if report.n_input_series == 0:
        raise DataSchemaError(f"no series has data at or before as_of {as_of:%Y-%m-%d} ({report.trimmed_rows} rows after it)")
    check_circuit_breaker(report, settings.validation.max_quarantine_share)
    run_id = make_run_id(as_of, scan.data_fingerprint, settings, series)
    folder = RunFolder(runs_dir(Path(settings.output.root).resolve()) / run_id)
    n_shards = settings.shard_count(scan.n_series)
    lifecycles = []
    with ShardInputWriter(folder) as writer:
        for history in scan.histories():  # one part's validated history at a time
            lifecycle = classify_lifecycle(
                history, as_of, settings.forecast.freq, min_backtest_length(settings), settings.lifecycle
            )
            lifecycle["shard"] = assign_shards(lifecycle[ID], n_shards)
            writer.write(history, history[ID].map(lifecycle.set_index(ID)["shard"]).to_numpy())
            lifecycles.append(lifecycle)
    shards = writer.shards
    lifecycle = lifecycles[0] if len(lifecycles) == 1 else pd.concat(lifecycles).sort_values(ID).reset_index(drop=True)
    for shard, part in lifecycle.groupby("shard"):
        write_atomic(part.drop(columns="shard"), folder.shard_lifecycle(int(shard)))
    inputs = {"lifecycle": lifecycle, "quarantine": report.quarantine, "repairs": report.repairs,
              "not_started": report.not_started}
    for name, part in inputs.items():
        write_atomic(part, folder.input(name))

    switching = _choose_switching_version(settings, folder, run_id)
    manifest = Manifest(
        run_id=run_id,
        as_of=as_of,
        started_at=round(started_at, 3),
        source=source,
        series_subset=sorted(series) if series else None,
        data_fingerprint=scan.data_fingerprint,
        n_input_series=report.n_input_series,
        trimmed_rows=report.trimmed_rows,
        validation_notes=scan.notes,
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
