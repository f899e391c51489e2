"""Read long-format history files, map their columns onto the contract, and fingerprint them.

A history file may name its columns as it likes (``item, week, sales``): the settings
``data.id_col``, ``data.time_col`` and ``data.target_col`` (flags ``--id-col``,
``--time-col``, ``--target-col``) say which column is which, and ``data.date_format``
(``--date-format``) how its dates are written. A mapping that does not fit the file fails
with a :class:`ColumnMappingError` that lists the file's columns, names the setting to
change and, where the file makes it plain, suggests the mapping.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from forecasting.data.contract import ID, TARGET, TIME
from forecasting.errors import InputError

# Date formats tried, in order, to suggest a ``data.date_format`` when dates do not parse.
_DATE_FORMATS = (
    "%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%m.%d.%Y", "%d-%m-%Y", "%m-%d-%Y", "%Y/%m/%d",
    "%d/%m/%y", "%m/%d/%y", "%d.%m.%y", "%Y%m%d", "%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M",
)
# Pairs that read the same text two ways: when both read every value, the dates are ambiguous.
_AMBIGUOUS = (("%d/%m/%Y", "%m/%d/%Y"), ("%d.%m.%Y", "%m.%d.%Y"), ("%d-%m-%Y", "%m-%d-%Y"),
              ("%d/%m/%y", "%m/%d/%y"))
_ROLES = {
    ID: ("the series id", "data.id_col", "--id-col"),
    TIME: ("the date", "data.time_col", "--time-col"),
    TARGET: ("the value to forecast", "data.target_col", "--target-col"),
}
_EXAMPLES = 3
_SAMPLE = 200


class DataReadError(InputError, OSError):
    """The input file is missing, unreadable, or of an unsupported format."""


class ColumnMappingError(DataReadError):
    """The file's columns do not fit the configured mapping, or its dates or values cannot be read."""


def read_history(
    path: Path,
    id_col: str = ID,
    time_col: str = TIME,
    target_col: str = TARGET,
    date_format: str | None = None,
) -> pd.DataFrame:
    """Read Parquet or CSV history and map its columns onto ``unique_id``, ``ds`` (dates), ``y``."""
    path = Path(path)
    if not path.exists():
        raise DataReadError(f"data file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix in {".parquet", ".pq"}:
            frame = pd.read_parquet(path)
        elif suffix in {".csv", ".txt"} or path.name.endswith(".csv.gz"):
            frame = pd.read_csv(path)
        else:
            raise DataReadError(f"unsupported data format {suffix!r} for {path}: use .parquet or .csv")
    except DataReadError:
        raise
    except Exception as exc:
        raise DataReadError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    return map_columns(frame, str(path), id_col, time_col, target_col, date_format)


def map_columns(
    frame: pd.DataFrame,
    source: str,
    id_col: str = ID,
    time_col: str = TIME,
    target_col: str = TARGET,
    date_format: str | None = None,
) -> pd.DataFrame:
    """Rename the configured columns to the contract's and parse the dates.

    ``source`` names the input in error messages (a path, or ``source.query``). Other
    columns are kept as they are. Raises :class:`ColumnMappingError` naming the input's
    columns and the setting to change.
    """
    mapping = {ID: id_col, TIME: time_col, TARGET: target_col}
    columns = [str(c) for c in frame.columns]
    missing = {role: column for role, column in mapping.items() if column not in columns}
    if missing:
        raise ColumnMappingError(_missing_message(frame, source, mapping, missing))
    clashes = [role for role, column in mapping.items() if role in columns and role != column and role not in mapping.values()]
    if clashes:
        role = clashes[0]
        _, setting, flag = _ROLES[role]
        raise ColumnMappingError(
            f"{source}: {setting} maps {mapping[role]!r} onto {role!r}, but the input also has a column {role!r}; "
            f"rename or drop one of them (the input's columns are: {_listing(columns)})"
        )
    renamed = frame.rename(columns={column: role for role, column in mapping.items() if column != role})
    renamed[TIME] = parse_dates(renamed[TIME], source, time_col, date_format)
    renamed[TARGET] = _numbers(renamed[TARGET], source, target_col)
    return renamed


def _listing(columns: Sequence[str]) -> str:
    return ", ".join(columns) if columns else "(none)"


def _missing_message(frame: pd.DataFrame, source: str, mapping: dict[str, str], missing: dict[str, str]) -> str:
    columns = [str(c) for c in frame.columns]
    what = "; ".join(f"missing column {column!r} for {_ROLES[role][0]} ({_ROLES[role][1]})" for role, column in missing.items())
    lines = [f"{source}: {what}.", f"The input's columns are: {_listing(columns)}."]
    guess = suggest_mapping(frame, mapping, missing)
    if guess:
        flags = " ".join(f"{_ROLES[role][2]} {column}" for role, column in guess.items())
        keys = ", ".join(f"{_ROLES[role][1]}: {column}" for role, column in guess.items())
        lines.append(f"Map them with {flags} (in a config file: {keys}).")
    else:
        flags = ", ".join(f"{_ROLES[role][2]} ({_ROLES[role][1]})" for role in missing)
        lines.append(f"Name the input's columns with {flags}.")
    return "\n".join(lines)


def _date_like(values: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(values):
        return True
    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return False
    sample = values.dropna().astype(str).head(_SAMPLE)
    return not sample.empty and any(_parses(sample, fmt) for fmt in _DATE_FORMATS)


def suggest_mapping(frame: pd.DataFrame, mapping: dict[str, str], missing: dict[str, str]) -> dict[str, str]:
    """A column for each missing role when the input leaves no doubt (one date-like column, one
    numeric column, one id-like column left); {} otherwise."""
    taken = {column for role, column in mapping.items() if role not in missing}
    free = [c for c in frame.columns if str(c) not in taken]
    dates = [c for c in free if _date_like(frame[c])]
    numbers = [c for c in free if c not in dates and pd.api.types.is_numeric_dtype(frame[c])
               and not pd.api.types.is_bool_dtype(frame[c])]
    floats = [c for c in numbers if pd.api.types.is_float_dtype(frame[c])]
    guess: dict[str, str] = {}
    if TIME in missing and len(dates) == 1:
        guess[TIME] = str(dates[0])
    if TARGET in missing:
        pick = numbers if len(numbers) == 1 else floats if len(floats) == 1 else []
        if pick:
            guess[TARGET] = str(pick[0])
    if ID in missing:
        left = [c for c in free if str(c) not in guess.values() and c not in dates
                and (c not in numbers or pd.api.types.is_integer_dtype(frame[c]))]
        if len(left) == 1:
            guess[ID] = str(left[0])
    return {role: guess[role] for role in _ROLES if role in guess} if set(guess) == set(missing) else {}


def _parses(values: pd.Series, fmt: str) -> bool:
    parsed = pd.to_datetime(values, format=fmt, errors="coerce")
    return bool(parsed.notna().all())


def _examples(values: pd.Series, bad: pd.Series) -> str:
    shown = [f"{values[i]!r} (row {i})" for i in bad[bad].index[:_EXAMPLES]]
    more = int(bad.sum()) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def parse_dates(values: pd.Series, source: str, column: str, date_format: str | None = None) -> pd.Series:
    """The dates of the time column, read with ``date_format`` when given.

    Without a format, the first common format that reads every date is used (day-first
    ``31/01/2024`` included), else pandas' own inference; dates that read two ways
    (``03/04/2024``: 3 April or 4 March) are refused rather than guessed.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    text = values.astype("string")
    present = values.notna()
    setting = "data.date_format (flag --date-format)"
    if date_format:
        parsed = pd.to_datetime(text, format=date_format, errors="coerce")
        bad = present & parsed.isna()
        if bad.any():
            raise ColumnMappingError(
                f"{source}: column {column!r} (data.time_col): {int(bad.sum())} value(s) do not match "
                f"the date format {date_format!r} of {setting}: {_examples(values, bad)}"
            )
        return parsed
    if pd.api.types.is_numeric_dtype(values):
        raise ColumnMappingError(
            f"{source}: column {column!r} (data.time_col) holds numbers, not dates (e.g. {values.dropna().iloc[0]!r}); "
            f"set {setting} to how they are written, for example '%Y%m%d'"
        )
    uniques = pd.Series(text[present].unique())
    fits = [fmt for fmt in _DATE_FORMATS if _parses(uniques, fmt)]
    for day_first, month_first in _AMBIGUOUS:
        if day_first in fits and month_first in fits and not pd.to_datetime(uniques, format=day_first).equals(
            pd.to_datetime(uniques, format=month_first)
        ):
            raise ColumnMappingError(
                f"{source}: the dates of column {column!r} read two ways ({uniques.iloc[0]!r}: day first or month first); "
                f"set {setting} to {day_first!r} or {month_first!r}"
            )
    if fits:  # one known format reads every date (day-first dates included)
        return pd.to_datetime(text, format=fits[0])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "could not infer format": handled below
            return pd.to_datetime(text)
    except (ValueError, TypeError, OverflowError):
        pass
    best = max(_DATE_FORMATS, key=lambda fmt: int(pd.to_datetime(uniques, format=fmt, errors="coerce").notna().sum()))
    bad = present & pd.to_datetime(text, format=best, errors="coerce").isna()
    raise ColumnMappingError(
        f"{source}: column {column!r} (data.time_col) has values that cannot be read as dates: "
        f"{_examples(values, bad)}; set {setting} to how they are written, for example '%d/%m/%Y'"
    )


def _numbers(values: pd.Series, source: str, column: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values
    converted = pd.to_numeric(values, errors="coerce")
    bad = values.notna() & converted.isna()
    if bad.any():
        comma = values[bad].astype(str).str.fullmatch(r"-?\d+,\d+").any()
        hint = " (a decimal comma? write 1.5, not 1,5)" if comma else ""
        raise ColumnMappingError(
            f"{source}: column {column!r} (the value to forecast, data.target_col / --target-col) has "
            f"{int(bad.sum())} value(s) that are not numbers{hint}: {_examples(values, bad)}"
        )
    return converted


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of a frame, independent of row order."""
    ordered = frame.sort_values(list(frame.columns[:2])).reset_index(drop=True)
    digest = hashlib.sha256(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes())
    digest.update(",".join(map(str, ordered.columns)).encode())
    return digest.hexdigest()
