"""The run catalog: every path of a run folder (``<output root>/runs/<run_id>/``), its manifest, and
the run loaded once per task (``Run.load``).

Layout of a run folder::

    manifest.json  summary.json  registration.json  timings.json  report.html  metrics.prom
    <output>.parquet                      ledger, leaderboard, scores, backtest, forecasts, ...
    input/<name>.parquet                  lifecycle, quarantine, repairs, not_started
    input/switching_version.json          the champion the switching margin compares with
    shards/shard-NNNN/                    input, lifecycle, the shard's results, _SUCCESS
    shards/shard-NNNN/global/             outcomes.parquet, _SUCCESS
    shards/shard-NNNN/batches/batch-NNNNN/  raw.parquet, notes.parquet, _SUCCESS
    shards/shard-NNNN/fallback/           the results of a shard that failed after its retries
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from forecasting.config import Settings
from forecasting.data.contract import ID

DONE = "_SUCCESS"  # marks a finished batch, global step or shard


def runs_dir(output_root: str | Path) -> Path:
    """The folder of every run under an output root."""
    return Path(output_root) / "runs"


def snapshot_path(output_root: str | Path, as_of: pd.Timestamp, digest: str) -> Path:
    """Where the snapshot of a dated source for ``as_of`` is kept (``digest``: its content hash)."""
    return snapshots_dir(output_root) / f"{as_of:%Y%m%d}-{digest}.parquet"


def snapshots_dir(output_root: str | Path) -> Path:
    return Path(output_root) / "snapshots"


@dataclass(frozen=True)
class RunFolder:
    """The paths of one run folder; nothing is read until asked."""

    path: Path

    @classmethod
    def under(cls, output_root: str | Path, run_id: str) -> RunFolder:
        return cls(runs_dir(output_root) / run_id)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def output_root(self) -> Path:
        return self.path.parent.parent

    @property
    def manifest(self) -> Path:
        return self.path / "manifest.json"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def registration(self) -> Path:
        """The register step's result: version, alias and the champion decision."""
        return self.path / "registration.json"

    @property
    def timings(self) -> Path:
        return self.path / "timings.json"

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.prom"

    @property
    def switching_version(self) -> Path:
        """The champion version the switching margin compares with, chosen once per run folder."""
        return self.path / "input" / "switching_version.json"

    def input(self, name: str) -> Path:
        return self.path / "input" / f"{name}.parquet"

    def output(self, name: str) -> Path:
        return self.path / f"{name}.parquet"

    def explanation(self, directory: Path, series_id: str, fmt: str) -> Path:
        """Where ``explain`` writes one series' explanation (its id made safe for a file name)."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in series_id)
        return directory / f"explain-{safe}-{self.run_id}.{fmt}"

    def shard_dir(self, shard: int) -> Path:
        return self.path / "shards" / f"shard-{shard:04d}"

    def shard_input(self, shard: int) -> Path:
        """The shard's validated history (written by prepare)."""
        return self.shard_dir(shard) / "input.parquet"

    def shard_lifecycle(self, shard: int) -> Path:
        """The shard's rows of ``input/lifecycle``: a task reads its shard's, not the whole run's."""
        return self.shard_dir(shard) / "lifecycle.parquet"

    def shard_frame(self, shard: int, name: str) -> Path:
        """One of the shard's results (``ShardResult.FRAMES``)."""
        return self.shard_dir(shard) / f"{name}.parquet"

    def shard_done(self, shard: int) -> Path:
        return self.shard_dir(shard) / DONE

    def global_dir(self, shard: int) -> Path:
        return self.shard_dir(shard) / "global"

    def global_outcomes(self, shard: int) -> Path:
        """The global candidates' forecasts per series, candidate and history length."""
        return self.global_dir(shard) / "outcomes.parquet"

    def global_done(self, shard: int) -> Path:
        """Marks the shard's global step done; holds what each global candidate was fitted with."""
        return self.global_dir(shard) / DONE

    def batch_dir(self, shard: int, batch: int) -> Path:
        return self.shard_dir(shard) / "batches" / f"batch-{batch:05d}"

    def batch_frame(self, shard: int, batch: int, name: str) -> Path:
        return self.batch_dir(shard, batch) / f"{name}.parquet"

    def batch_done(self, shard: int, batch: int) -> Path:
        return self.batch_dir(shard, batch) / DONE

    def fallback_frame(self, shard: int, name: str) -> Path:
        """One of the fallback results of a shard that failed after its retries."""
        return self.shard_dir(shard) / "fallback" / f"{name}.parquet"

    def read_manifest(self) -> Manifest:
        return Manifest.from_json(self.read_json(self.manifest))

    def read_as_of(self) -> pd.Timestamp:
        """The run's as-of date, read from its manifest alone (cheap, and lenient with an old one)."""
        return pd.Timestamp(self.read_json(self.manifest)["as_of"])

    @property
    def is_finished(self) -> bool:
        """Prepared and finalized: the manifest, the ledger and the leaderboard are there."""
        return all(p.exists() for p in (self.manifest, self.output("ledger"), self.output("leaderboard")))

    def read_json(self, path: Path) -> dict[str, Any]:
        return json.loads(path.read_text())

    def write_json(self, path: Path, content: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(content, indent=2, sort_keys=True, default=str))
        temporary.replace(path)


@dataclass(frozen=True)
class Manifest:
    """What prepare records about a run (``manifest.json``): its input, layout, settings and versions."""

    run_id: str
    as_of: pd.Timestamp
    shards: list[int] = field(default_factory=list)
    n_shards: int = 0
    settings: dict[str, Any] = field(default_factory=dict)  # as JSON; ``Run.settings`` holds them parsed
    source: str = ""
    started_at: float | None = None  # when the run's prepare step began (epoch seconds)
    series_subset: list[str] | None = None
    data_fingerprint: str = ""
    n_input_series: int | None = None
    trimmed_rows: int | None = None
    validation_notes: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    plugins: dict[str, str] = field(default_factory=dict)
    plugin_isolation: dict[str, Any] | None = None
    switching_version: str = ""  # the champion whose winners the switching margin keeps ("" for none)

    # JSON key -> attribute where they differ (the key is kept so that every run folder still loads)
    _RENAMED = {"previous_winners_version": "switching_version"}
    _OPTIONAL = ("started_at", "n_input_series", "trimmed_rows", "plugin_isolation")

    @classmethod
    def from_json(cls, content: dict[str, Any]) -> Manifest:
        known = set(cls.__dataclass_fields__)
        values = {cls._RENAMED.get(k, k): v for k, v in content.items()}
        values = {k: v for k, v in values.items() if k in known and v is not None or k == "series_subset"}
        values["as_of"] = pd.Timestamp(values["as_of"])
        values["shards"] = [int(s) for s in values.get("shards", [])]
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """The manifest as written to ``manifest.json`` (the keys every reader knows)."""
        content: dict[str, Any] = {
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat(),
            "started_at": self.started_at,
            "source": self.source,
            "series_subset": self.series_subset,
            "data_fingerprint": self.data_fingerprint,
            "n_input_series": self.n_input_series,
            "trimmed_rows": self.trimmed_rows,
            "validation_notes": self.validation_notes,
            "shards": self.shards,
            "n_shards": self.n_shards,
            "settings": self.settings,
            "versions": self.versions,
            "plugins": self.plugins,
            "plugin_isolation": self.plugin_isolation,
            "previous_winners_version": self.switching_version,
        }
        return {k: v for k, v in content.items() if v is not None or k not in self._OPTIONAL}


@dataclass(frozen=True)
class Run:
    """A run folder with its manifest and the settings it was prepared with: loaded once per task."""

    folder: RunFolder
    manifest: Manifest
    settings: Settings

    @classmethod
    def load(cls, run_dir: str | Path) -> Run:
        folder = RunFolder(Path(run_dir))
        manifest = folder.read_manifest()
        return cls(folder, manifest, Settings(**manifest.settings))

    @classmethod
    def of(cls, run: Run | str | Path) -> Run:
        """``run`` itself, or the run loaded from a folder (for callers that hold only its path)."""
        return run if isinstance(run, Run) else cls.load(run)

    @property
    def run_id(self) -> str:
        return self.folder.run_id

    @property
    def path(self) -> Path:
        return self.folder.path


def read_shard_lifecycle(folder: RunFolder, shard: int, series: list[str] | None = None) -> pd.DataFrame:
    """The lifecycle rows of ``shard`` (only ``series`` when given).

    A run prepared before shards had their own lifecycle file reads the run's whole one.
    """
    path = folder.shard_lifecycle(shard)
    if not path.exists():
        frame = pd.read_parquet(folder.input("lifecycle"))
        frame = frame[frame["shard"] == shard].drop(columns="shard")
    else:
        frame = pd.read_parquet(path)
    if series is not None:
        frame = frame[frame[ID].isin(series)]
    return frame.reset_index(drop=True)


def run_history(folder: RunFolder, shards: Sequence[int]) -> pd.DataFrame:
    """The validated history the run trained on (every shard's input)."""
    frames = [pd.read_parquet(folder.shard_input(s), columns=[ID, "ds", "y"]) for s in shards]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame({ID: pd.Series(dtype=str), "ds": pd.Series(dtype="datetime64[ns]"),
                             "y": pd.Series(dtype=float)})
    return pd.concat(frames, ignore_index=True).sort_values([ID, "ds"]).reset_index(drop=True)


def finished_runs(output_root: str | Path) -> list[RunFolder]:
    """Every finished run folder under an output root."""
    runs = runs_dir(output_root)
    return [RunFolder(p) for p in runs.iterdir() if RunFolder(p).is_finished] if runs.is_dir() else []


def read_series(path: Path, series: Sequence[str], columns: list[str] | None = None) -> pd.DataFrame:
    """The rows of some series in one of the run's Parquet files (none for no series)."""
    return pd.read_parquet(path, columns=columns, filters=[(ID, "in", list(series))]) if series else pd.DataFrame()


def series_history(folder: RunFolder, series: Sequence[str]) -> pd.DataFrame:
    """Clean history of some series, read from their shards' input files only."""
    lifecycle = pd.read_parquet(folder.input("lifecycle"), columns=[ID, "shard"])
    shards = lifecycle.loc[lifecycle[ID].isin(series), "shard"].unique()
    parts = [read_series(folder.shard_input(int(s)), series, [ID, "ds", "y"]) for s in sorted(shards)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[ID, "ds", "y"])


def write_text_atomic(path: Path, text: str) -> None:
    """Atomic write (a textfile collector must never read a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
