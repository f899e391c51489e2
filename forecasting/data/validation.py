"""Data validation at the boundary: a frame-level schema, then per-series rules.

Two kinds of problems, handled differently:

* A broken file (a contract column missing, ``ds`` not parseable as dates, ``y`` not
  numeric, missing ids or dates) fails fast with :class:`DataSchemaError`, whose message is
  a short readable report naming the column and a few offending values.
* A broken *series* never stops the run: it is either repaired (what was done is recorded in
  ``ValidationReport.repairs``) or quarantined (one row in ``ValidationReport.quarantine``,
  all its rows removed from the clean history), according to
  :class:`~forecasting.config.settings.ValidationSettings`.

The schema is checked before anything reads a column (the default as-of date included:
:func:`check_schema`). Time-zone-aware dates (a tz-aware column, or strings with a UTC
offset such as ``+05:00``) are read as local wall-clock time, the offset dropped, so that
local midnights stay on the grid; ``ValidationReport.notes`` says so.

Per-series rules run in this order; a series is quarantined for the first rule that
quarantines it, and later rules only see the series still kept:

1. rows after ``as_of`` are dropped and counted (``trimmed_rows``), never quarantined;
   a series whose every row lies after ``as_of`` does not exist yet at ``as_of``: it is
   listed in ``ValidationReport.not_started`` and not counted in ``n_input_series``;
   ``invalid_id``: an id that is empty, longer than ``MAX_ID_LENGTH`` characters or holds
   a control character (a NUL byte cannot be stored by PostgreSQL);
2. ``non_finite_values``: NaN or infinite ``y`` (quarantine | drop the rows);
3. ``irregular_frequency``: a ``ds`` off the ``freq`` grid, e.g. a Wednesday in W-SUN data
   or a time of day in weekly data (quarantine | drop the rows);
4. ``duplicate_timestamps``: the same ``ds`` twice in a series (quarantine | sum | last,
   "last" keeping the last row in input order);
5. ``negative_values``: allow | clip to 0 | quarantine;
6. ``too_short``: fewer than ``min_observations`` real observations left;
   ``excessive_gaps``: filling the gaps between its first and last observation would make
   more than ``max_gap_fill_share`` of that span (a mistyped year, say 1917 for 2017, turns
   a series into a century of zeros; trailing periods are not counted: they mean it ended);
7. ``gaps``: periods missing between the series' first date and ``as_of``, trailing periods
   after its last date included (fill_zero | interpolate, trailing ones forward-filled |
   forward_fill | quarantine).

The clean history holds the contract columns only (``unique_id`` str, ``ds``
datetime64[ns], ``y`` float64), sorted by ``unique_id`` and ``ds``, one row per period of
each series' regular grid from its first observation to the last grid date at or before
``as_of``. Other (exogenous) columns are not carried: merge them back on (unique_id, ds).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from forecasting.config.settings import ValidationSettings
from forecasting.data.contract import (
    ID,
    MAX_ID_LENGTH,
    STATUS_NOT_STARTED,
    STATUS_QUARANTINED,
    TARGET,
    TIME,
)
from forecasting.errors import InputError, UntrustedRunError

# Quarantine reason codes, in the order the rules run.
REASON_INVALID_ID = "invalid_id"
REASON_NON_FINITE = "non_finite_values"
REASON_IRREGULAR = "irregular_frequency"
REASON_DUPLICATES = "duplicate_timestamps"
REASON_NEGATIVE = "negative_values"
REASON_TOO_SHORT = "too_short"
REASON_EXCESSIVE_GAPS = "excessive_gaps"
REASON_GAPS = "gaps"
REASON_NOT_STARTED = "starts_after_as_of"  # not a quarantine: the series has no row at or before as_of
REASONS = (
    REASON_INVALID_ID,
    REASON_NON_FINITE,
    REASON_IRREGULAR,
    REASON_DUPLICATES,
    REASON_NEGATIVE,
    REASON_TOO_SHORT,
    REASON_EXCESSIVE_GAPS,
    REASON_GAPS,
)

# Repair codes: what was changed in a kept series (``count`` = rows or periods affected).
REPAIR_DROPPED_NON_FINITE = "dropped_non_finite"
REPAIR_DROPPED_IRREGULAR = "dropped_irregular"
REPAIR_DUPLICATES_SUMMED = "duplicates_summed"  # count = rows folded into another row
REPAIR_DUPLICATES_LAST = "duplicates_last_kept"  # count = earlier rows discarded
REPAIR_CLIPPED_NEGATIVE = "clipped_negative"
REPAIR_GAP_FILLED = "gap_filled"  # count = periods added (interior and trailing)
REPAIRS = (
    REPAIR_DROPPED_NON_FINITE,
    REPAIR_DROPPED_IRREGULAR,
    REPAIR_DUPLICATES_SUMMED,
    REPAIR_DUPLICATES_LAST,
    REPAIR_CLIPPED_NEGATIVE,
    REPAIR_GAP_FILLED,
)

QUARANTINE_COLUMNS = [ID, "reason", "detail"]
NOT_STARTED_COLUMNS = [ID, "reason", "detail"]
REPAIR_COLUMNS = [ID, "repair", "count"]

_EXAMPLES = 3  # offending values quoted per series or column

_SCHEMA = pa.DataFrameSchema(
    {
        ID: pa.Column(str, coerce=True, nullable=False),
        TIME: pa.Column("datetime64[ns]", coerce=True, nullable=False),
        TARGET: pa.Column("float64", coerce=True, nullable=True),
    },
    strict=False,
    ordered=False,
)


class DataSchemaError(InputError, ValueError):
    """The input is broken as a whole: a column missing, dates unparseable, y not numeric."""


class CircuitBreakerError(UntrustedRunError, RuntimeError):
    """Too large a share of the series has no publishable forecast to trust the run."""


@dataclass
class ValidationReport:
    """Outcome of :func:`validate_history`."""

    history: pd.DataFrame
    quarantine: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=QUARANTINE_COLUMNS))
    repairs: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=REPAIR_COLUMNS))
    trimmed_rows: int = 0
    n_input_series: int = 0
    not_started: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=NOT_STARTED_COLUMNS))
    notes: list[str] = field(default_factory=list)

    @property
    def quarantine_share(self) -> float:
        """Quarantined series / input series (0.0 for an empty input)."""
        if self.n_input_series == 0:
            return 0.0
        return len(self.quarantine) / self.n_input_series

    def reason_counts(self) -> pd.Series:
        """Number of quarantined series per reason, most frequent first."""
        return self.quarantine["reason"].value_counts().rename("n_series")

    def repair_counts(self) -> pd.DataFrame:
        """Per repair: how many series it touched and how many rows or periods in total."""
        return (
            self.repairs.groupby("repair")["count"]
            .agg(n_series="size", n_rows="sum")
            .sort_values("n_series", ascending=False)
        )


# --------------------------------------------------------------------------- schema


def _quote(value: object) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _schema_report(exc: SchemaErrors, raw: pd.DataFrame) -> str:
    cases = exc.failure_cases
    lines: list[str] = []
    coerce_failed: set[str] = set()
    present = ", ".join(map(str, raw.columns)) or "none"
    for (column, check), group in cases.groupby(["column", "check"], sort=False, dropna=False):
        check = str(check)
        values = group["failure_case"].tolist()
        rows = group["index"].tolist()
        examples = ", ".join(
            f"{_quote(v)} (row {r})" for v, r in zip(values[:_EXAMPLES], rows[:_EXAMPLES], strict=False)
        )
        more = f" and {len(values) - _EXAMPLES} more" if len(values) > _EXAMPLES else ""
        if check == "column_in_dataframe":
            for missing in values:
                lines.append(f"- missing column {missing!r} (columns present: {present})")
        elif check.startswith("coerce_dtype"):
            coerce_failed.add(str(column))
            what = {
                TIME: "cannot be parsed as dates",
                TARGET: "are not numeric",
                ID: "cannot be read as text ids",
            }.get(str(column), f"cannot be converted ({check})")
            lines.append(f"- column {column!r}: {len(values)} value(s) {what}: {examples}{more}")
        elif check == "not_nullable":
            rows_text = ", ".join(map(str, rows[:_EXAMPLES]))
            lines.append(f"- column {column!r}: {len(values)} missing value(s), e.g. at row(s) {rows_text}{more}")
        elif check.startswith("dtype("):
            continue  # reported below unless a coercion failure already explains it
        else:
            lines.append(f"- column {column!r}: check {check} failed: {examples}{more}")
    for (column, check), _ in cases.groupby(["column", "check"], sort=False, dropna=False):
        if str(check).startswith("dtype(") and str(column) not in coerce_failed:
            lines.append(f"- column {column!r}: wrong type, expected {str(check)[6:-1]}")
    header = f"input history does not match the data contract ({ID}, {TIME}, {TARGET}):"
    return "\n".join([header, *lines])


_OFFSET = re.compile(r"^(.*\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)
_NS_RANGE = f"{pd.Timestamp.min:%Y-%m-%d} to {pd.Timestamp.max:%Y-%m-%d}"


def _wall_clock(column: pd.Series) -> tuple[pd.Series, list[str]]:
    """Time-zone-aware dates as naive local wall-clock times; notes saying what was converted."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        note = f"{TIME} is time-zone aware ({column.dtype.tz}): read as local wall-clock time, the zone dropped"
        return column.dt.tz_localize(None), [note]
    if column.dtype != object and not pd.api.types.is_string_dtype(column):
        return column, []
    aware = column.map(lambda v: getattr(v, "tzinfo", None) is not None)
    if aware.any():  # datetime objects with a zone, possibly mixed with naive ones
        column = column.where(~aware, column[aware].map(lambda v: pd.Timestamp(v).tz_localize(None)))
    text = column.map(lambda v: _OFFSET.match(v.strip()) if isinstance(v, str) else None)
    offset = text.notna()
    if offset.any():
        column = column.where(~offset, text[offset].map(lambda m: m.group(1)))
    converted = int(aware.sum() + offset.sum())
    if not converted:
        return column, []
    parsed = pd.to_datetime(column, format="mixed", errors="coerce")
    unparsed = parsed.isna() & column.notna()
    column = parsed.astype(object).where(~unparsed, column) if unparsed.any() else parsed  # the rest: reported
    example = next(iter(pd.Series(text[offset].map(lambda m: m.string)).head(1)), "")
    shown = f", e.g. {example!r}" if example else ""
    return column, [f"{converted} {TIME} value(s) carry a time zone or UTC offset{shown}: read as local "
                    "wall-clock time, the offset dropped"]


def _out_of_range(column: pd.Series) -> list[str]:
    """Report lines for dates outside what the platform's timestamps hold (nanoseconds: 1677 to 2262)."""
    if pd.api.types.is_datetime64_dtype(column.dtype) and column.dtype != np.dtype("datetime64[ns]"):
        low, high = pd.Timestamp.min, pd.Timestamp.max
        values = column.astype(object)
        bad = values.map(lambda v: v is not None and not pd.isna(v) and not (low <= pd.Timestamp(v) <= high))
    elif column.dtype == object or pd.api.types.is_string_dtype(column):
        bad = column.map(_parses_out_of_range)
    else:
        return []
    if not bad.any():
        return []
    rows = column[bad]
    examples = ", ".join(f"{_quote(v)} (row {r})" for r, v in rows.head(_EXAMPLES).items())
    more = f" and {len(rows) - _EXAMPLES} more" if len(rows) > _EXAMPLES else ""
    return [f"- column {TIME!r}: {len(rows)} date(s) outside the supported range {_NS_RANGE}: {examples}{more}"]


def _parses_out_of_range(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return False
    try:
        stamp.as_unit("ns")
    except (ValueError, OverflowError):
        return True
    return False


def check_schema(raw: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The contract columns with their types (``ds`` as naive wall-clock time), and notes on what was converted.

    Raises :class:`DataSchemaError` naming every broken column and a few offending values.
    """
    if not isinstance(raw, pd.DataFrame):
        raise DataSchemaError(f"input history must be a pandas DataFrame, got {type(raw).__name__}")
    subset = raw[[c for c in (ID, TIME, TARGET) if c in raw.columns]].copy()
    notes: list[str] = []
    problems: list[str] = []
    if TIME in subset:
        subset[TIME], notes = _wall_clock(subset[TIME])
        problems = _out_of_range(subset[TIME])
    checked = subset.drop(columns=TIME) if problems else subset
    header = f"input history does not match the data contract ({ID}, {TIME}, {TARGET}):"
    try:
        frame = _SCHEMA.validate(checked, lazy=True) if not problems else _validate_without_time(checked)
    except SchemaErrors as exc:
        raise DataSchemaError("\n".join([_schema_report(exc, raw), *problems])) from None
    if problems:
        raise DataSchemaError("\n".join([header, *problems]))
    return frame[[ID, TIME, TARGET]].reset_index(drop=True), notes


def _validate_without_time(frame: pd.DataFrame) -> pd.DataFrame:
    schema = _SCHEMA.remove_columns([TIME])
    return schema.validate(frame, lazy=True)


def default_as_of(frame: pd.DataFrame) -> pd.Timestamp:
    """The as-of date when none is given: the last date of a schema-checked frame."""
    return pd.Timestamp(frame[TIME].max())


def wall_clock_as_of(as_of: pd.Timestamp | str) -> pd.Timestamp:
    """An as-of date as naive wall-clock time (a zone or offset is dropped, as for the data)."""
    stamp = pd.Timestamp(as_of)
    return stamp.tz_localize(None) if stamp.tzinfo is not None else stamp


# --------------------------------------------------------------------------- per series


def _format_dates(values: np.ndarray) -> np.ndarray:
    index = pd.DatetimeIndex(values)
    fmt = "%Y-%m-%d" if (index == index.normalize()).all() else "%Y-%m-%d %H:%M:%S"
    return np.asarray(index.strftime(fmt), dtype=object)


def _examples_by_series(codes: np.ndarray, labels: np.ndarray) -> pd.Series:
    """Comma-joined first few labels per series code (codes in row order)."""
    frame = pd.DataFrame({"code": codes, "label": labels})
    head = frame.groupby("code", sort=True).head(_EXAMPLES)
    return head.groupby("code", sort=True)["label"].agg(", ".join)


class _Ledger:
    """Quarantine reasons and repairs per series code, filled rule by rule."""

    def __init__(self, n_series: int) -> None:
        self.reason = np.full(n_series, None, dtype=object)
        self.detail = np.full(n_series, None, dtype=object)
        self.repairs: list[tuple[np.ndarray, str, np.ndarray]] = []

    def quarantine(self, codes: np.ndarray, reason: str, details: pd.Series | Sequence[str]) -> None:
        self.reason[codes] = reason
        self.detail[codes] = np.asarray(details, dtype=object)

    def repair(self, codes: np.ndarray, repair: str, counts: np.ndarray) -> None:
        keep = counts > 0
        if keep.any():
            self.repairs.append((codes[keep], repair, counts[keep]))

    @property
    def quarantined(self) -> np.ndarray:
        return pd.notna(self.reason)


def _per_series_counts(codes: np.ndarray, mask: np.ndarray, n_series: int) -> np.ndarray:
    return np.bincount(codes[mask], minlength=n_series)


def _apply_row_rule(
    work: pd.DataFrame,
    bad: np.ndarray,
    policy: str,
    reason: str,
    repair: str,
    describe: str,
    ledger: _Ledger,
    n_series: int,
) -> pd.DataFrame:
    """Quarantine the series with bad rows, or drop the bad rows and record a repair."""
    if not bad.any():
        return work
    codes = work["code"].to_numpy()
    counts = _per_series_counts(codes, bad, n_series)
    hit = np.flatnonzero(counts)
    if policy == "quarantine":
        labels = _format_dates(work["ds"].to_numpy()[bad])
        examples = _examples_by_series(codes[bad], labels)
        totals = np.bincount(codes, minlength=n_series)
        details = [
            f"{counts[c]} of {totals[c]} rows {describe}, e.g. {examples[c]}" for c in hit
        ]
        ledger.quarantine(hit, reason, details)
        return work[~ledger.quarantined[codes]]
    ledger.repair(hit, repair, counts[hit])
    return work[~bad]


def _grid(start: pd.Timestamp, as_of: pd.Timestamp, freq: str) -> pd.DatetimeIndex:
    """Every period of ``freq`` from the first one at or after ``start`` (midnight) to ``as_of``."""
    grid = pd.date_range(start=start.normalize(), end=as_of, freq=freq)
    return grid.as_unit("ns")


def validate_history(
    raw: pd.DataFrame, freq: str, as_of: pd.Timestamp, policy: ValidationSettings
) -> ValidationReport:
    """Check and clean a long history frame; see the module docstring for the rules.

    Raises :class:`DataSchemaError` when the frame as a whole is broken. Never raises for a
    broken series: it is repaired or quarantined according to ``policy``.
    """
    frame, notes = check_schema(raw)
    return validate_checked_history(frame, freq, as_of, policy, notes)


def validate_checked_history(
    frame: pd.DataFrame, freq: str, as_of: pd.Timestamp, policy: ValidationSettings, notes: list[str] | None = None
) -> ValidationReport:
    """``validate_history`` of a frame ``check_schema`` already returned (its ``notes`` go into the report)."""
    notes = list(notes or [])
    as_of = wall_clock_as_of(as_of)

    after = (frame[TIME] > as_of).to_numpy()
    trimmed_rows = int(after.sum())
    not_started = _not_started(frame, after, as_of)
    frame = frame[~after]
    codes, ids = pd.factorize(frame[ID], sort=True)
    ids = np.asarray(ids, dtype=object)
    n_series = len(ids)
    ledger = _Ledger(n_series)

    if n_series == 0:
        return _report(ids, ledger, _empty_history(), trimmed_rows, not_started, notes)

    _check_ids(ids, ledger)
    keep = ~ledger.quarantined[codes]
    frame, codes = frame[keep], codes[keep]

    work = pd.DataFrame(
        {
            "code": codes.astype(np.int64),
            "ds": frame[TIME].to_numpy(),
            "y": frame[TARGET].to_numpy(dtype=np.float64),
        }
    )
    if work.empty:  # every series was quarantined by its id
        return _report(ids, ledger, _empty_history(), trimmed_rows, not_started, notes)
    grid = _grid(work["ds"].min(), as_of, freq)

    # non-finite y
    work = _apply_row_rule(
        work, ~np.isfinite(work["y"].to_numpy()), policy.non_finite, REASON_NON_FINITE,
        REPAIR_DROPPED_NON_FINITE, "have NaN or infinite y", ledger, n_series,
    )

    # dates off the frequency grid
    pos = grid.get_indexer(pd.DatetimeIndex(work["ds"].to_numpy()))
    work = work.assign(pos=pos)
    work = _apply_row_rule(
        work, pos < 0, policy.irregular_dates, REASON_IRREGULAR, REPAIR_DROPPED_IRREGULAR,
        f"fall off the {freq} grid", ledger, n_series,
    )

    # duplicate timestamps
    work = _duplicates(work, policy.duplicates, ledger, n_series)

    # negative values
    y = work["y"].to_numpy()
    negative = y < 0
    if negative.any() and policy.negative_values != "allow":
        codes_now = work["code"].to_numpy()
        counts = _per_series_counts(codes_now, negative, n_series)
        hit = np.flatnonzero(counts)
        if policy.negative_values == "quarantine":
            minima = pd.Series(y[negative]).groupby(codes_now[negative]).min()
            details = [f"{counts[c]} negative value(s), minimum {minima[c]:g}" for c in hit]
            ledger.quarantine(hit, REASON_NEGATIVE, details)
            work = work[~ledger.quarantined[codes_now]]
        else:  # clip
            work = work.assign(y=np.where(negative, 0.0, y))
            ledger.repair(hit, REPAIR_CLIPPED_NEGATIVE, counts[hit])

    history = _regularise(work, grid, policy, ledger, n_series, freq)
    return _report(ids, ledger, history, trimmed_rows, not_started, notes)


def _not_started(frame: pd.DataFrame, after: np.ndarray, as_of: pd.Timestamp) -> pd.DataFrame:
    """Series whose every row lies after ``as_of``: they do not exist yet, and are listed with why."""
    if not after.any():
        return pd.DataFrame(columns=NOT_STARTED_COLUMNS)
    later = frame[after].groupby(ID, sort=True)[TIME].agg(["min", "size"])
    later = later[~later.index.isin(frame.loc[~after, ID].unique())]
    details = [f"all {n} row(s) lie after as_of {as_of:%Y-%m-%d} (the first on {first:%Y-%m-%d})"
               for first, n in zip(later["min"], later["size"], strict=True)]
    return pd.DataFrame({ID: later.index.astype(object), "reason": REASON_NOT_STARTED, "detail": details},
                        columns=NOT_STARTED_COLUMNS)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def id_problem(uid: str) -> str:
    """Why ``uid`` cannot be a series id ("" when it can): empty, too long, or a control character."""
    if not uid.strip():
        return "the id is empty or blank"
    if len(uid) > MAX_ID_LENGTH:
        return f"the id is {len(uid)} characters long, at most {MAX_ID_LENGTH} are allowed: {_quote(uid)}"
    found = _CONTROL.search(uid)
    if found:
        return (f"the id holds the control character {found.group()!r} at position {found.start()}, "
                f"which databases cannot store or readers cannot print: {_quote(uid)}")
    return ""


def _check_ids(ids: np.ndarray, ledger: _Ledger) -> None:
    problems = [id_problem(str(uid)) for uid in ids]
    hit = np.flatnonzero([bool(p) for p in problems])
    if hit.size:
        ledger.quarantine(hit, REASON_INVALID_ID, [problems[c] for c in hit])


def _duplicates(work: pd.DataFrame, policy: str, ledger: _Ledger, n_series: int) -> pd.DataFrame:
    dup_any = work.duplicated(["code", "pos"], keep=False).to_numpy()
    if not dup_any.any():
        return work
    codes = work["code"].to_numpy()
    if policy == "quarantine":
        dups = work[dup_any]
        per_date = dups.groupby(["code", "pos"], sort=True).agg(ds=("ds", "first"), n=("ds", "size"))
        per_date = per_date.reset_index()
        labels = _format_dates(per_date["ds"].to_numpy()) + " (x" + per_date["n"].astype(str).to_numpy() + ")"
        examples = _examples_by_series(per_date["code"].to_numpy(), labels)
        n_dates = per_date.groupby("code").size()
        hit = n_dates.index.to_numpy()
        details = [f"{n_dates[c]} timestamp(s) appear more than once, e.g. {examples[c]}" for c in hit]
        ledger.quarantine(hit, REASON_DUPLICATES, details)
        return work[~ledger.quarantined[codes]]
    extra = work.duplicated(["code", "pos"], keep="last").to_numpy()
    counts = _per_series_counts(codes, extra, n_series)
    hit = np.flatnonzero(counts)
    if policy == "sum":
        ledger.repair(hit, REPAIR_DUPLICATES_SUMMED, counts[hit])
        summed = work.groupby(["code", "pos"], sort=False, as_index=False).agg(ds=("ds", "first"), y=("y", "sum"))
        return summed[["code", "ds", "y", "pos"]]
    ledger.repair(hit, REPAIR_DUPLICATES_LAST, counts[hit])
    return work[~extra]


def _regularise(
    work: pd.DataFrame,
    grid: pd.DatetimeIndex,
    policy: ValidationSettings,
    ledger: _Ledger,
    n_series: int,
    freq: str,
) -> pd.DataFrame:
    """Too-short and gap rules, then one row per grid period of every kept series."""
    codes = work["code"].to_numpy()
    pos = work["pos"].to_numpy()
    n_obs = np.bincount(codes, minlength=n_series)
    first = np.full(n_series, len(grid), dtype=np.int64)
    np.minimum.at(first, codes, pos)
    last = np.full(n_series, -1, dtype=np.int64)
    np.maximum.at(last, codes, pos)

    alive = ~ledger.quarantined
    short = alive & (n_obs < policy.min_observations)
    if short.any():
        hit = np.flatnonzero(short)
        ledger.quarantine(
            hit, REASON_TOO_SHORT,
            [f"{n_obs[c]} observation(s) after cleaning, at least {policy.min_observations} needed" for c in hit],
        )
    alive = ~ledger.quarantined
    length = np.where(alive, len(grid) - first, 0)
    missing = np.where(alive, length - n_obs, 0)
    trailing = np.where(alive, len(grid) - 1 - last, 0)

    # Periods missing between a series' first and last observation (trailing ones mean it ended).
    span = np.where(alive, last - first + 1, 0)
    interior = np.where(alive, span - n_obs, 0)
    share = interior / np.maximum(span, 1)
    excessive = alive & (share > policy.max_gap_fill_share)
    if policy.gaps != "quarantine" and excessive.any():
        hit = np.flatnonzero(excessive)
        details = [
            f"filling its gaps would add {interior[c]} of the {span[c]} periods between its first and last "
            f"observation ({share[c]:.0%}), above validation.max_gap_fill_share ({policy.max_gap_fill_share:.0%}); "
            f"{_longest_gap(codes, pos, c, grid)}"
            for c in hit
        ]
        ledger.quarantine(hit, REASON_EXCESSIVE_GAPS, details)
        alive = ~ledger.quarantined
        length = np.where(alive, length, 0)
        missing = np.where(alive, missing, 0)

    if policy.gaps == "quarantine" and (missing > 0).any():
        hit = np.flatnonzero(missing > 0)
        # first missing period: the first grid step not present after the series start
        first_missing = _first_missing(codes, pos, first, hit)
        labels = _format_dates(grid[first_missing].to_numpy())
        details = [
            f"{missing[c]} missing period(s) of {freq} up to as_of ({trailing[c]} trailing), "
            f"first missing {label}"
            for c, label in zip(hit, labels, strict=True)
        ]
        ledger.quarantine(hit, REASON_GAPS, details)
        alive = ~ledger.quarantined
        length = np.where(alive, length, 0)
        missing = np.where(alive, missing, 0)

    kept = alive[codes]
    codes, pos, y = codes[kept], pos[kept], work["y"].to_numpy()[kept]
    starts = np.concatenate([[0], np.cumsum(length)[:-1]])
    total = int(length.sum())
    out_code = np.repeat(np.arange(n_series), length)
    out_pos = np.arange(total) - np.repeat(starts, length) + np.repeat(first, length)
    out_y = np.full(total, np.nan)
    out_y[starts[codes] + pos - first[codes]] = y

    if (missing > 0).any():
        ledger.repair(np.flatnonzero(missing > 0), REPAIR_GAP_FILLED, missing[missing > 0])
        out_y = _fill(out_y, out_pos > last[out_code], policy.gaps)

    return pd.DataFrame({"code": out_code, "ds": grid[out_pos].to_numpy(), "y": out_y})


def _longest_gap(codes: np.ndarray, pos: np.ndarray, code: int, grid: pd.DatetimeIndex) -> str:
    """The longest run of missing periods of one series, in words (a mistyped year shows up here)."""
    observed = np.unique(pos[codes == code])
    runs = np.diff(observed) - 1
    i = int(np.argmax(runs))
    return (f"the longest run: {int(runs[i])} missing periods between {grid[observed[i]]:%Y-%m-%d} and "
            f"{grid[observed[i + 1]]:%Y-%m-%d} (a mistyped date?)")


def _first_missing(codes: np.ndarray, pos: np.ndarray, first: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """Grid position of the first missing period of each series in ``hit``."""
    result = np.empty(len(hit), dtype=np.int64)
    order = np.lexsort((pos, codes))
    codes_sorted, pos_sorted = codes[order], pos[order]
    bounds = np.searchsorted(codes_sorted, np.stack([hit, hit + 1]))
    for i, (c, lo, hi) in enumerate(zip(hit, bounds[0], bounds[1], strict=True)):
        offsets = pos_sorted[lo:hi] - first[c]
        breaks = np.flatnonzero(offsets != np.arange(hi - lo))
        result[i] = first[c] + (breaks[0] if breaks.size else hi - lo)
    return result


def _fill(y: np.ndarray, trailing: np.ndarray, method: str) -> np.ndarray:
    """Fill the NaN periods of the flat, series-contiguous array ``y``.

    Every series starts with a real observation, so a forward fill never crosses series.
    """
    if method == "fill_zero":
        return np.where(np.isnan(y), 0.0, y)
    filled = pd.Series(y).ffill().to_numpy()
    if method == "forward_fill":
        return filled
    # interpolate: trailing periods forward-filled, interior gaps linear between neighbours
    y = np.where(trailing, filled, y)
    return pd.Series(y).interpolate(method="linear", limit_area="inside").to_numpy()


def _empty_history() -> pd.DataFrame:
    return pd.DataFrame(
        {"code": np.array([], dtype=np.int64), "ds": np.array([], dtype="datetime64[ns]"), "y": np.array([], dtype=np.float64)}
    )


def _report(
    ids: np.ndarray, ledger: _Ledger, work: pd.DataFrame, trimmed_rows: int, not_started: pd.DataFrame, notes: list[str]
) -> ValidationReport:
    history = pd.DataFrame(
        {
            ID: ids[work["code"].to_numpy()] if len(ids) else np.array([], dtype=object),
            TIME: pd.DatetimeIndex(work["ds"].to_numpy()).as_unit("ns"),
            TARGET: work["y"].to_numpy(dtype=np.float64),
        }
    )
    history[ID] = history[ID].astype(object)
    q_codes = np.flatnonzero(ledger.quarantined)
    quarantine = pd.DataFrame(
        {ID: ids[q_codes], "reason": ledger.reason[q_codes], "detail": ledger.detail[q_codes]},
        columns=QUARANTINE_COLUMNS,
    ).astype({ID: object, "reason": object, "detail": object})

    if ledger.repairs:
        repairs = pd.concat(
            [
                pd.DataFrame({"code": c, "repair": name, "count": n.astype(np.int64)})
                for c, name, n in ledger.repairs
            ],
            ignore_index=True,
        )
        repairs = repairs[~ledger.quarantined[repairs["code"].to_numpy()]]
        rank = repairs["repair"].map({name: i for i, name in enumerate(REPAIRS)})
        repairs = repairs.assign(_rank=rank).sort_values(["code", "_rank"], kind="stable")
        repairs = pd.DataFrame(
            {ID: ids[repairs["code"].to_numpy()], "repair": repairs["repair"].to_numpy(),
             "count": repairs["count"].to_numpy(dtype=np.int64)}
        )
    else:
        repairs = pd.DataFrame({ID: np.array([], dtype=object), "repair": np.array([], dtype=object),
                                "count": np.array([], dtype=np.int64)})
    return ValidationReport(
        history=history,
        quarantine=quarantine.reset_index(drop=True),
        repairs=repairs.reset_index(drop=True),
        trimmed_rows=trimmed_rows,
        n_input_series=len(ids),
        not_started=not_started.reset_index(drop=True),
        notes=notes,
    )


# --------------------------------------------------------------------------- circuit breaker


def check_circuit_breaker(report: ValidationReport, max_share: float) -> None:
    """Raise :class:`CircuitBreakerError` when more than ``max_share`` of the series are quarantined."""
    share = report.quarantine_share
    if share <= max_share:
        return
    counts = report.reason_counts()
    top = ", ".join(f"{reason} {n}" for reason, n in counts.head(5).items())
    raise CircuitBreakerError(
        f"circuit breaker: {share:.1%} of series quarantined ({len(report.quarantine)} of "
        f"{report.n_input_series}), above the limit of {max_share:.1%}. "
        f"Top reasons: {top}. Fix the input or raise validation.max_quarantine_share."
    )


def check_forecast_breaker(ledger: pd.DataFrame, max_share: float) -> None:
    """Raise :class:`CircuitBreakerError` when more than ``max_share`` of a run's series has no
    publishable forecast: quarantined by validation or because every model failed.

    Counted over the series with data at the as-of date (``not_started`` ones are not); an
    ended series is a lifecycle decision, not a failure, and is not counted as one.
    """
    counted = ledger[ledger["status"] != STATUS_NOT_STARTED]
    failed = counted[counted["status"] == STATUS_QUARANTINED]
    share = len(failed) / len(counted) if len(counted) else 0.0
    if share <= max_share:
        return
    top = ", ".join(f"{reason} {n}" for reason, n in failed["reason"].value_counts().head(5).items())
    raise CircuitBreakerError(
        f"circuit breaker: {len(failed)} of {len(counted)} series ({share:.1%}) have no publishable forecast, "
        f"above validation.max_quarantine_share ({max_share:.1%}). Reasons: {top}. Nothing was registered or "
        "published: the table keeps its previous forecasts. Fix the input or raise validation.max_quarantine_share."
    )
