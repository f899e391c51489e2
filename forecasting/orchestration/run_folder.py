"""Paths inside one run folder: ``<output root>/runs/<run_id>/``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from forecasting.config import Settings


@dataclass(frozen=True)
class RunFolder:
    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def output_root(self) -> Path:
        return self.path.parent.parent

    @property
    def manifest(self) -> Path:
        return self.path / "manifest.json"

    def input(self, name: str) -> Path:
        return self.path / "input" / f"{name}.parquet"

    def shard_dir(self, shard: int) -> Path:
        return self.path / "shards" / f"shard-{shard:04d}"

    def shard_input(self, shard: int) -> Path:
        """The shard's validated history (written by prepare)."""
        return self.shard_dir(shard) / "input.parquet"

    def shard_lifecycle(self, shard: int) -> Path:
        """The shard's rows of ``input/lifecycle``: a task reads its shard's, not the whole run's."""
        return self.shard_dir(shard) / "lifecycle.parquet"

    def shard_done(self, shard: int) -> Path:
        return self.shard_dir(shard) / "_SUCCESS"

    def batch_dir(self, shard: int, batch: int) -> Path:
        return self.shard_dir(shard) / "batches" / f"batch-{batch:05d}"

    def output(self, name: str) -> Path:
        return self.path / f"{name}.parquet"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    def read_json(self, path: Path) -> dict[str, Any]:
        return json.loads(path.read_text())

    def write_json(self, path: Path, content: dict[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(content, indent=2, sort_keys=True, default=str))
        temporary.replace(path)


def load_run(run_dir: str | Path) -> tuple[RunFolder, dict[str, Any], Settings]:
    """A run folder, its manifest, and the settings it was prepared with."""
    folder = RunFolder(Path(run_dir))
    manifest = folder.read_json(folder.manifest)
    return folder, manifest, Settings(**manifest["settings"])


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
        frame = frame[frame["unique_id"].isin(series)]
    return frame.reset_index(drop=True)
