"""Artifact hashes: recorded as a version tag at registration, checked before loading.

The registry database is the trust anchor: a bundle whose files no longer match the
hashes recorded there is refused before any of its files is read as a model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

HASH_TAG = "forecasting.sha256"
# written by MLflow into a downloaded models:/ folder (the name and version); never loaded as code or data
DOWNLOAD_METADATA = frozenset({"registered_model_meta"})


class TamperedBundleError(RuntimeError):
    """A bundle's files differ from the hashes recorded when it was registered."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def directory_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root``, keyed by its POSIX path relative to ``root``."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): file_sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def encode(hashes: dict[str, str]) -> str:
    return json.dumps(hashes, sort_keys=True, separators=(",", ":"))


def verify(root: Path, recorded: str | None, what: str) -> None:
    """Raise TamperedBundleError unless the files under ``root`` are exactly the recorded ones."""
    if not recorded:
        raise TamperedBundleError(f"{what}: no artifact hashes were recorded at registration ({HASH_TAG} tag missing)")
    expected = json.loads(recorded)
    actual = {k: v for k, v in directory_hashes(root).items() if k not in DOWNLOAD_METADATA}
    changed = sorted(k for k in expected.keys() & actual.keys() if expected[k] != actual[k])
    missing = sorted(expected.keys() - actual.keys())
    added = sorted(actual.keys() - expected.keys())
    if changed or missing or added:
        parts = [f"{label}: {', '.join(names)}" for label, names in
                 (("changed", changed), ("missing", missing), ("unexpected", added)) if names]
        raise TamperedBundleError(
            f"{what}: artifacts do not match the hashes recorded at registration ({'; '.join(parts)}); refusing to load"
        )
