"""Read long-format history files and fingerprint their content."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd


class DataReadError(OSError):
    """The input file is missing, unreadable, or of an unsupported format."""


def read_history(path: Path, id_col: str = "unique_id", time_col: str = "ds", target_col: str = "y") -> pd.DataFrame:
    """Read Parquet or CSV history and rename the configured columns to unique_id, ds, y."""
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
    renames = {id_col: "unique_id", time_col: "ds", target_col: "y"}
    return frame.rename(columns={k: v for k, v in renames.items() if k != v})


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of a frame, independent of row order."""
    ordered = frame.sort_values(list(frame.columns[:2])).reset_index(drop=True)
    digest = hashlib.sha256(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes())
    digest.update(",".join(map(str, ordered.columns)).encode())
    return digest.hexdigest()
