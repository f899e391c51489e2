"""The settings and the input of a run: the config file with the run's as-of date, the as-of
date's snapshot of a dated source (a path template or a query), and the history it names."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from forecasting.config import ConfigError, Settings, load_settings
from forecasting.data.contract import ID
from forecasting.data.demo import generate_demo_panel
from forecasting.data.io import read_history
from forecasting.data.source import read_file_snapshot, read_query_snapshot
from forecasting.orchestration.run_catalog import snapshot_path
from forecasting.publishing.table import write_atomic


def run_settings(config: str | None, as_of: str | None = None) -> Settings:
    """The settings of a run: the config file, the environment, and the run's as-of date."""
    overrides = {"forecast": {"as_of": str(as_of)}} if as_of else {}
    return load_settings(Path(config) if config else None, overrides)


def with_snapshot(settings: Settings) -> Settings:
    """Point ``data.path`` at the as-of date's snapshot when a source template or query is set."""
    source, data = settings.source, settings.data
    if not (source.path_template or source.query):
        return settings
    if not settings.forecast.as_of:
        raise ConfigError("source.path_template / source.query need an as_of date (forecast.as_of, --as-of)")
    as_of = pd.Timestamp(settings.forecast.as_of)
    if source.query:
        frame = read_query_snapshot(source.query, source.url_env, as_of, data.id_col, data.time_col, data.target_col,
                                    data.date_format)
    else:
        frame = read_file_snapshot(source.path_template, as_of, data.id_col, data.time_col, data.target_col,
                                   data.date_format)
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()[:12]
    path = snapshot_path(Path(settings.output.root).resolve(), as_of, digest)
    if not path.exists():
        write_atomic(frame, path)
    updated = settings.model_copy(deep=True)
    updated.data.path = path
    updated.data.id_col, updated.data.time_col, updated.data.target_col = ID, "ds", "y"
    updated.data.date_format = None  # the snapshot holds parsed dates
    return updated


def dated_source(config: str | None) -> bool:
    """Whether the configured input has a snapshot per as-of date (a template or a query)."""
    source = run_settings(config).source
    return bool(source.path_template or source.query)


def load_input(settings: Settings) -> tuple[pd.DataFrame, str]:
    """The run's history (the configured file, or the demo panel) and a description of where it came from."""
    if settings.data.path is None:
        demo = settings.demo
        panel = generate_demo_panel(demo.n_series, demo.n_periods, settings.forecast.freq, demo.end, demo.seed)
        return panel, f"demo(n_series={demo.n_series}, n_periods={demo.n_periods}, seed={demo.seed})"
    data = settings.data
    frame = read_history(data.path, data.id_col, data.time_col, data.target_col, data.date_format)
    return frame, str(Path(data.path).resolve())
