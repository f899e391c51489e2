"""A run's input read part by part: a folder of Parquet or CSV files (each series in one file) is
never held in one frame; a single file or the demo panel is one part.

Prepare scans the parts twice before it writes anything: once for the schema, the series subset,
the fingerprint and the default as-of date (the last date of the whole input), once to validate
each part against that date (the quarantine, the repairs and the counts the circuit breaker and
the shard count need). Then ``InputScan.histories`` validates each part again, in turn, for the
shards. A single part is read and validated once and held between the passes, as before.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from forecasting.config import ConfigError, Settings
from forecasting.data.contract import ID, TARGET, TIME
from forecasting.data.frequency import require_fitting_frequency
from forecasting.data.io import DataReadError, fingerprint, read_history
from forecasting.data.validation import (
    DataSchemaError,
    ValidationReport,
    check_schema,
    validate_checked_history,
    wall_clock_as_of,
)
from forecasting.orchestration.run_catalog import RunFolder
from forecasting.orchestration.run_input import load_input
from forecasting.training.selection_step import concat_frames

logger = logging.getLogger(__name__)

PART_SUFFIXES = (".parquet", ".pq", ".csv")
Part = Callable[[], pd.DataFrame]


def input_parts(settings: Settings) -> tuple[list[Part], str]:
    """Readers of the input's parts, and where the input is: every file of a ``data.path`` folder
    (in name order), or the one file (or the demo panel), read once."""
    data = settings.data
    if data.path is not None and Path(data.path).is_dir():
        folder = Path(data.path)
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in PART_SUFFIXES)
        if not files:
            raise DataReadError(f"data folder {folder} holds no {', '.join(PART_SUFFIXES)} file")
        readers = [partial(read_history, f, data.id_col, data.time_col, data.target_col, data.date_format) for f in files]
        return list(readers), str(folder.resolve())
    frame, source = load_input(settings)
    return [lambda: frame], source


@dataclass
class InputScan:
    """What the passes over the parts found about the whole input."""

    as_of: pd.Timestamp  # the forecast origin: the last period on the grid at or before the as-of date
    data_fingerprint: str
    report: ValidationReport  # of the whole input; its history is left empty when the input has parts
    notes: list[str]
    n_series: int  # validated series: those the run forecasts
    histories: Callable[[], Iterator[pd.DataFrame]]  # each part's validated history, in turn


@dataclass
class _Checked:
    """A part's contract columns, schema-checked (the subset's series only), and its fingerprint."""

    frame: pd.DataFrame
    fingerprint: str
    notes: list[str]
    last: pd.Timestamp  # its last date before the subset


def _checked(raw: pd.DataFrame, settings: Settings, wanted: set[str] | None) -> _Checked | None:
    """None for a part without rows; an empty frame when none of its series is in the subset."""
    if raw.empty:
        return None
    frame, notes = check_schema(raw)
    last = pd.Timestamp(frame[TIME].max())
    if wanted is not None:
        keep = frame[ID].isin(wanted).to_numpy()
        raw, frame = raw[keep], frame[keep].reset_index(drop=True)
        if frame.empty:
            return _Checked(frame, "", notes, last)
    require_fitting_frequency(frame[TIME], settings.forecast.freq, settings.data.time_col)
    return _Checked(frame, fingerprint(raw), notes, last)


@dataclass
class _Validated:
    """What the second pass keeps of a part: everything but its history."""

    report: ValidationReport
    n_series: int
    last: pd.Timestamp | None


def scan_input(parts: Sequence[Part], source: str, settings: Settings, series: Sequence[str] | None) -> InputScan:
    """The passes over the input before anything is written (see the module docstring)."""
    wanted = {str(s) for s in series} if series else None
    checked = [_checked(part(), settings, wanted) for part in parts] if len(parts) == 1 else None
    fingerprints, notes, last = _first_pass(parts, source, settings, wanted, checked)
    as_of = wall_clock_as_of(settings.forecast.as_of) if settings.forecast.as_of else last

    def validated(found: _Checked) -> ValidationReport:
        return validate_checked_history(found.frame, settings.forecast.freq, as_of, settings.validation, found.notes)

    if checked is not None:  # one part: read and validated once, held between the passes
        single = checked[0]
        assert single is not None  # _first_pass raised: the input has no rows
        report = validated(single)
        history = report.history
        return InputScan(_origin(as_of, [_last(history)]), fingerprints[0], report, notes,
                         int(history[ID].nunique()), lambda: iter([history]))

    def found_parts() -> Iterator[_Checked]:
        for part in parts:
            found = _checked(part(), settings, wanted)
            if found is not None and not found.frame.empty:
                yield found

    kept = []
    for found in found_parts():  # the second pass: validate against the whole input's as-of date
        report = validated(found)
        history = report.history
        kept.append(_Validated(replace(report, history=history.iloc[0:0]), int(history[ID].nunique()), _last(history)))
    reports = [k.report for k in kept]
    combined = ValidationReport(
        history=reports[0].history if reports else pd.DataFrame(columns=[ID, TIME, TARGET]),
        quarantine=concat_frames([r.quarantine for r in reports]),
        repairs=concat_frames([r.repairs for r in reports]),
        trimmed_rows=sum(r.trimmed_rows for r in reports),
        n_input_series=sum(r.n_input_series for r in reports),
        not_started=concat_frames([r.not_started for r in reports]),
        notes=notes,
    )
    digest = hashlib.sha256("\n".join(fingerprints).encode()).hexdigest()
    return InputScan(_origin(as_of, [k.last for k in kept]), digest, combined, notes, sum(k.n_series for k in kept),
                     lambda: (validated(found).history for found in found_parts()))


def _first_pass(parts: Sequence[Part], source: str, settings: Settings, wanted: set[str] | None,
                checked: list[_Checked | None] | None) -> tuple[list[str], list[str], pd.Timestamp]:
    """Every part's fingerprint, the schema notes, the last date of the whole input (the default
    as-of date, also for a subset, so that it forecasts from the same origin as the full run);
    each series must lie in one part."""
    fingerprints: list[str] = []
    notes: list[str] = []
    owner: dict[str, int] = {}
    last: pd.Timestamp | None = None
    for number, part in enumerate(parts):
        found = checked[number] if checked is not None else _checked(part(), settings, wanted)
        if found is None:
            continue
        last = found.last if last is None or found.last > last else last
        notes += [n for n in found.notes if n not in notes]
        if found.frame.empty:
            continue
        fingerprints.append(found.fingerprint)
        if checked is None:
            for uid in pd.unique(found.frame[ID]):
                first = owner.setdefault(str(uid), number)
                if first != number:
                    raise DataSchemaError(f"series {uid} lies in two parts of the input {source} (files {first + 1} "
                                          f"and {number + 1} in name order): each series must lie in one file")
    if last is None:
        raise DataSchemaError(f"the input {source} has no rows")
    if not fingerprints:
        raise ConfigError(f"series: none of the {len(wanted or ())} requested series is in the input {source}")
    for note in notes:
        logger.warning("input %s: %s", source, note)
    return fingerprints, notes, last


def _last(history: pd.DataFrame) -> pd.Timestamp | None:
    return pd.Timestamp(history[TIME].max()) if len(history) else None


def _origin(as_of: pd.Timestamp, ends: Sequence[pd.Timestamp | None]) -> pd.Timestamp:
    """The last period on the frequency grid at or before ``as_of`` (the parts' validated histories
    end there), or ``as_of`` when nothing is left."""
    found = [end for end in ends if end is not None]
    return max(found) if found else as_of


class ShardInputWriter:
    """Each shard's input file, written part by part (a row group per part) and moved into place
    when the writer closes; a failure leaves no shard file behind."""

    def __init__(self, folder: RunFolder) -> None:
        self.folder = folder
        self._writers: dict[int, tuple[pq.ParquetWriter, Path]] = {}

    def __enter__(self) -> ShardInputWriter:
        return self

    def __exit__(self, kind: Any, *exc: Any) -> None:
        for writer, temporary in self._writers.values():
            writer.close()
            if kind is not None:
                temporary.unlink(missing_ok=True)
        if kind is None:
            for shard, (_, temporary) in self._writers.items():
                os.replace(temporary, self.folder.shard_input(shard))

    @property
    def shards(self) -> list[int]:
        return sorted(self._writers)

    def write(self, history: pd.DataFrame, shard_of_row: np.ndarray) -> None:
        """Append the rows of ``history`` to their shards' files (``shard_of_row``: a shard per row)."""
        for shard, rows in history.groupby(shard_of_row):
            table = pa.Table.from_pandas(rows.reset_index(drop=True), preserve_index=False)
            if int(shard) not in self._writers:
                path = self.folder.shard_input(int(shard))
                path.parent.mkdir(parents=True, exist_ok=True)
                temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                self._writers[int(shard)] = (pq.ParquetWriter(temporary, table.schema), temporary)
            writer, _ = self._writers[int(shard)]
            writer.write_table(table.cast(writer.schema))
