"""Typed settings for a forecasting run.

Every key has an embedded default, so a run needs no file at all. A YAML file
(``config/*.yaml``) overrides the defaults, environment variables
(``FORECASTING__SECTION__KEY``) override the file, and explicit overrides (the
command-line flags) override everything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from forecasting.config.seasonality import season_lengths


def default_season_length(freq: str) -> int:
    """Season length that the frequency implies: its shortest seasonal cycle (W 52, M 12, Q 4, D 7, h 24, else 1)."""
    return season_lengths(freq)[0]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataSettings(_Section):
    """Where the history comes from and what its columns are."""

    path: Path | None = Field(None, description="Parquet or CSV file in long format; None = demo panel.")
    id_col: str = Field("unique_id", min_length=1, description="The file's column holding the series id.")
    time_col: str = Field("ds", min_length=1, description="The file's column holding the date.")
    target_col: str = Field("y", min_length=1, description="The file's column holding the value to forecast.")
    date_format: str | None = Field(
        None, description="strftime format of the dates, e.g. '%d/%m/%Y'; None = recognised (ambiguous dates refused)."
    )


class DemoSettings(_Section):
    """The built-in demo panel used when no data path is given."""

    n_series: int = Field(300, ge=10)
    n_periods: int = Field(156, ge=30)
    seed: int = 7
    end: str = "2025-12-28"


class ForecastSettings(_Section):
    freq: str = "W-SUN"
    horizon: int = Field(13, ge=1)
    season_length: int | None = Field(None, ge=1, description="None = implied by freq.")
    quantiles: list[float] = Field(default_factory=lambda: [0.1, 0.5, 0.9])
    as_of: str | None = Field(None, description="Forecast origin; None = the last date in the data.")

    @field_validator("freq")
    @classmethod
    def _known_frequency(cls, value: str) -> str:
        try:
            pd.tseries.frequencies.to_offset(value)
        except ValueError as exc:
            raise ValueError(f"unknown pandas frequency {value!r}") from exc
        return value

    @field_validator("quantiles")
    @classmethod
    def _median_included_and_sorted(cls, value: list[float]) -> list[float]:
        if any(not 0.0 < q < 1.0 for q in value):
            raise ValueError(f"quantiles must lie strictly between 0 and 1, got {value}")
        return sorted({round(q, 6) for q in [*value, 0.5]})

    @field_validator("as_of")
    @classmethod
    def _parsable_date(cls, value: str | None) -> str | None:
        if value is not None:
            pd.Timestamp(value)
        return value

    @model_validator(mode="after")
    def _fill_season_length(self) -> ForecastSettings:
        if self.season_length is None:
            self.season_length = default_season_length(self.freq)
        return self


class ValidationSettings(_Section):
    """Per-series data policies (see docs/user-guide.md, 'Validation and status codes')."""

    duplicates: Literal["quarantine", "sum", "last"] = "quarantine"
    non_finite: Literal["quarantine", "drop"] = "quarantine"
    irregular_dates: Literal["quarantine", "drop"] = "quarantine"
    gaps: Literal["fill_zero", "interpolate", "forward_fill", "quarantine"] = "fill_zero"
    negative_values: Literal["allow", "clip", "quarantine"] = "allow"
    min_observations: int = Field(2, ge=1)
    max_gap_fill_share: float = Field(
        0.5, gt=0.0, le=1.0,
        description="Quarantine (excessive_gaps) a series whose gap filling would create more than this share of it.",
    )
    max_quarantine_share: float = Field(
        0.2, ge=0.0, le=1.0,
        description="Circuit breaker: the run fails when more than this share of its series has no publishable forecast.",
    )


class LifecycleSettings(_Section):
    """Series lifecycle: new, intermittent (ADI/CV2 rule), smooth, ended."""

    ended_after_periods: int = Field(26, ge=1, description="No non-zero value in this many periods = ended.")
    adi_threshold: float = Field(1.32, gt=1.0)
    cv2_threshold: float = Field(0.49, gt=0.0)
    min_history_seasons: float = Field(
        0.0, ge=0.0, description="Extra history (in seasons) a series needs beyond the backtest to count as established."
    )


class CandidateSettings(_Section):
    """One candidate model: its registered name and its parameters."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    alias: str | None = None
    move_forward: bool | None = Field(
        None, description="Expensive model: move forward from the earliest cutoff (true) or refit at every cutoff "
        "(false); None = backtest.move_forward."
    )

    @property
    def label(self) -> str:
        return self.alias or self.name


def _default_candidates() -> list[CandidateSettings]:
    names = [
        "AutoETS",
        "AutoTheta",
        "AutoCES",
        "MSTL",  # only where the frequency has several seasonal cycles (hourly, daily)
        "SeasonalNaive",
        "Naive",
        "HistoricAverage",
        "WindowAverage",
        "CrostonOptimized",
        "ADIDA",
        "IMAPA",
        "TSB",
    ]
    return [CandidateSettings(name=name) for name in names]


class ModelSettings(_Section):
    candidates: list[CandidateSettings] = Field(default_factory=_default_candidates)
    fallback: list[str] = Field(default_factory=lambda: ["Naive", "HistoricAverage"])
    max_history_seasons: float = Field(
        4.0, gt=0.0, description="History cap for models tagged expensive, in cycles of the longest seasonality."
    )
    fit_time_limit_seconds: float = Field(60.0, gt=0.0, description="Wall-clock safety stop per fit.")
    conformal_windows: int = Field(2, ge=2, description="Calibration windows for models without native quantiles.")

    @field_validator("candidates")
    @classmethod
    def _unique_labels(cls, value: list[CandidateSettings]) -> list[CandidateSettings]:
        labels = [c.label for c in value]
        duplicated = sorted({label for label in labels if labels.count(label) > 1})
        if duplicated:
            raise ValueError(f"candidate labels must be unique; repeated: {duplicated}")
        if not value:
            raise ValueError("at least one candidate is required")
        return value


class BacktestSettings(_Section):
    """Rolling-origin backtest: the evidence every choice and calibration rests on."""

    n_windows: int = Field(6, ge=1, description="Windows per series at most (fewer for short series).")
    step: int | None = Field(None, ge=1, description="Periods between cutoffs; None = horizon.")
    min_train_share: float = Field(
        0.5, gt=0.0, lt=1.0, description="A window keeps at least this share of the series' history for training."
    )
    move_forward: bool = Field(
        True, description="Fit expensive models once at the earliest cutoff and move them forward (no refit)."
    )


class SelectionSettings(_Section):
    """When a series leaves the default ensemble for a single candidate, and the quality gate."""

    margin: float = Field(
        0.2, ge=0.0, description="A single candidate replaces the ensemble when its backtest loss is lower by this share ..."
    )
    min_windows: int = Field(3, ge=1, description="... over at least this many windows, winning two thirds of them.")
    explosion_factor: float = Field(10.0, gt=1.0, description="Quality gate: max |forecast| vs max |history|.")


class ComputeSettings(_Section):
    """Where shards run: an embedded Dask cluster, a real one, or this process."""

    executor: Literal["dask", "serial"] = "dask"
    scheduler_address: str | None = Field(None, description="tcp://host:port of a Dask scheduler; None = embedded LocalCluster.")
    n_workers: int | None = Field(None, ge=1, description="Embedded cluster workers; None = one per core.")
    worker_memory_limit: str = "4GiB"
    worker_profiling: bool = Field(
        False, description="Dask's statistical profiler on the embedded workers (the dashboard's Profile page); it keeps "
        "the last 1,000 one-second profiles per worker, which adds about 150 MiB to a worker over a long run."
    )
    n_shards: int | None = Field(
        None, ge=1, le=1024, description="Shards (units of retry and calibration pools); None = one per series_per_shard."
    )
    series_per_shard: int = Field(250, ge=1, description="Series per shard when n_shards is None.")
    series_per_batch: int | None = Field(
        None, ge=1, description="Series per Dask task; None = from the candidates' cost (tasks of about 2 s)."
    )
    progress: bool = True


class PluginLimits(_Section):
    """Limits for one plug-in's child processes; unset keys take the ``plugins`` defaults."""

    timeout_seconds: float | None = Field(None, gt=0.0)
    memory_limit_mb: int | None = Field(None, ge=256)


class PluginSettings(_Section):
    """How plug-in models (installed through entry points, not built in) are run."""

    isolation: bool = Field(True, description="Fit plug-ins in child processes (False: in-process, like built-ins).")
    timeout_seconds: float = Field(
        120.0, gt=0.0, description="Wall clock a child may spend on one series (all its backtest windows and the refit)."
    )
    memory_limit_mb: int = Field(2048, ge=256, description="Address-space limit of a child process (RLIMIT_AS).")
    limits: dict[str, PluginLimits] = Field(default_factory=dict, description="Per plug-in name: overrides of the two limits.")
    verdict_cache: Path | None = Field(
        None, description="Folder for cached conformance verdicts; None = <output.root>/plugins."
    )

    def limits_for(self, name: str) -> tuple[float, int]:
        """(timeout_seconds, memory_limit_mb) for the plug-in ``name``."""
        own = self.limits.get(name) or PluginLimits()
        timeout = own.timeout_seconds if own.timeout_seconds is not None else self.timeout_seconds
        memory = own.memory_limit_mb if own.memory_limit_mb is not None else self.memory_limit_mb
        return timeout, memory


class CovariateSettings(_Section):
    """An optional second input of covariates (used by models tagged exogenous, e.g. LightGBM)."""

    path: Path | None = Field(None, description="CSV or Parquet: key columns, a date column, covariate columns.")
    time_col: str = "ds"
    keys: list[str] = Field(default_factory=lambda: ["unique_id"], description="Columns naming a series or a group.")
    id_pattern: str | None = Field(None, description="Regex whose named groups (= keys) are read from unique_id.")
    known_in_advance: list[str] = Field(default_factory=list, description="Used at their own date, future included.")
    past_only: list[str] = Field(default_factory=list, description="Used only shifted by the horizon.")
    static_path: Path | None = Field(None, description="CSV or Parquet: key columns and static columns.")
    static: list[str] = Field(default_factory=list, description="Static columns (text becomes category codes).")


class TuningSettings(_Section):
    """Hyper-parameter search of global models on a window before the backtest (optuna TPE)."""

    n_trials: int = Field(0, ge=0, description="Trials per shard and global candidate; 0 = the configured parameters.")
    seed: int = 0


class EnsembleSettings(_Section):
    """The default forecast: a weighted ensemble whose weights are shared by a pool of series."""

    enabled: bool = Field(True, description="False: each series gets its best single candidate instead.")
    rounds: int = Field(10, ge=0, description="Greedy rounds chosen on the backtest (weights move in steps of them).")
    prior: list[str] = Field(
        default_factory=lambda: ["AutoETS", "AutoTheta", "AutoCES", "CrostonOptimized", "ADIDA", "IMAPA", "TSB"],
        description="Candidates that share the prior weight (those present in a pool).",
    )
    prior_rounds: float = Field(
        30.0, ge=0.0, description="Units of weight of the prior, beside the greedy rounds (estimated weights are noisy)."
    )


class CostSettings(_Section):
    """Stop backtesting expensive candidates that cheap ones already beat clearly in the first window."""

    skip_expensive_margin: float | None = Field(
        None, gt=0.0, description="Skip when its first-window loss > best cheap loss x (1 + margin); None = off."
    )


class OutputSettings(_Section):
    root: Path = Path("output")


class ReportingSettings(_Section):
    """The run report (HTML), ``forecasting explain`` and the Prometheus export."""

    enabled: bool = Field(True, description="Write report.html and metrics.prom into the run folder after publish.")
    max_fan_charts: int = Field(12, ge=0, le=100, description="Sample fan charts in the report (largest, worst, changed winner, fallbacks).")
    history_periods: int = Field(104, ge=4, description="Periods of history drawn before the forecast in a fan chart.")
    textfile_dir: Path | None = Field(
        None, description="Also write the metrics to <dir>/forecasting.prom (a node exporter textfile collector directory)."
    )


class SourceSettings(_Section):
    """Input of scheduled runs: a fixed snapshot per as-of date, from a file or a SQL query."""

    path_template: str | None = Field(
        None, description="File path or glob with {as_of} (a date, e.g. {as_of:%Y-%m-%d}); None = data.path."
    )
    query: str | None = Field(None, description="SQL query with an :as_of parameter; its rows are the history.")
    url_env: str = Field("FORECASTING_SOURCE_URL", description="Environment variable holding the query's database URL.")

    @model_validator(mode="after")
    def _one_source(self) -> SourceSettings:
        if self.path_template and self.query:
            raise ValueError("set either path_template or query, not both")
        return self


class DatabaseSettings(_Section):
    """The SQL forecast table and the monitoring tables (one database)."""

    enabled: bool = True
    url_env: str = Field(
        "FORECASTING_DATABASE_URL",
        description="Environment variable holding the SQLAlchemy URL; unset = SQLite file <output.root>/forecasting.db.",
    )
    forecast_table: str = "forecasts"


class MonitoringSettings(_Section):
    """Live accuracy of published forecasts and when it triggers a retrain (a CUSUM per series)."""

    cusum_drift: float = Field(
        0.9, gt=0.0, description="Allowance per week in log(live loss / reference loss): evidence accumulates above it."
    )
    cusum_threshold: float = Field(3.0, gt=0.0, description="Degraded when a series' CUSUM statistic reaches this.")
    min_scale_loss: float = Field(0.1, ge=0.0, description="Floor of a series' reference (backtest) loss level.")
    materiality: float = Field(
        0.05, ge=0.0, description="Errors below this share of a series' level never count as degradation."
    )
    lookback_weeks: int = Field(26, ge=1, description="Target weeks back from the evaluation date that are judged.")
    max_series_share: float = Field(0.5, gt=0.0, le=1.0, description="More degraded than this share: alert, no retrain.")


class RetentionSettings(_Section):
    """How long run folders and their checkpoints are kept."""

    keep_weeks: int | None = Field(12, ge=1, description="Delete run folders older than this; None = keep all.")


class RegistrySettings(_Section):
    """MLflow tracking and the model registry (one bundle version per run)."""

    enabled: bool = Field(True, description="Log each run to MLflow and register its bundle.")
    tracking_uri: str | None = Field(
        None, description="MLflow tracking server URI; None = embedded SQLite store under <output.root>/mlflow."
    )
    experiment: str = "forecasting"
    model_name: str = Field("forecasting", min_length=1, description="The registered model (one for all series).")
    champion_margin: float = Field(
        0.0, ge=0.0, description="A new version becomes champion unless its held-out loss exceeds the champion's by this share."
    )
    undecided: Literal["keep", "promote"] = Field(
        "keep", description="When no series is comparable with the champion: keep it, or promote the new version."
    )
    max_champion_age_weeks: int | None = Field(
        8, ge=0, description="An undecidable comparison promotes the new version once the champion's origin is this "
                             "many weeks older; None = never."
    )
    switching_margin: float = Field(
        0.0, ge=0.0, description="A series keeps the champion's model unless the new winner's loss is lower by this share."
    )


class Settings(BaseSettings):
    """All settings of one run."""

    model_config = SettingsConfigDict(
        extra="forbid",
        validate_assignment=True,
        env_prefix="FORECASTING__",
        env_nested_delimiter="__",
    )

    data: DataSettings = Field(default_factory=DataSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)
    forecast: ForecastSettings = Field(default_factory=ForecastSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    lifecycle: LifecycleSettings = Field(default_factory=LifecycleSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    backtest: BacktestSettings = Field(default_factory=BacktestSettings)
    selection: SelectionSettings = Field(default_factory=SelectionSettings)
    compute: ComputeSettings = Field(default_factory=ComputeSettings)
    plugins: PluginSettings = Field(default_factory=PluginSettings)
    covariates: CovariateSettings = Field(default_factory=CovariateSettings)
    tuning: TuningSettings = Field(default_factory=TuningSettings)
    ensemble: EnsembleSettings = Field(default_factory=EnsembleSettings)
    cost: CostSettings = Field(default_factory=CostSettings)
    output: OutputSettings = Field(default_factory=OutputSettings)
    reporting: ReportingSettings = Field(default_factory=ReportingSettings)
    source: SourceSettings = Field(default_factory=SourceSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Layering (file < environment < flags) is done explicitly by load_settings.
        return (init_settings,)

    @property
    def season_length(self) -> int:
        assert self.forecast.season_length is not None
        return self.forecast.season_length

    @property
    def backtest_step(self) -> int:
        return self.backtest.step or self.forecast.horizon

    @property
    def seasonalities(self) -> tuple[int, ...]:
        """Seasonal cycles in periods, shortest first: the season length, then the frequency's longer cycles."""
        primary = self.season_length
        return (primary, *(s for s in season_lengths(self.forecast.freq) if s > primary))

    def shard_count(self, n_series: int) -> int:
        """Shards for a panel of ``n_series`` series (``compute.n_shards``, or one per ``series_per_shard``)."""
        if self.compute.n_shards is not None:
            return self.compute.n_shards
        return int(min(1024, max(1, -(-n_series // self.compute.series_per_shard))))
