"""Artifact hashes: any changed, missing or added file is named; MLflow's download note is not a file of the bundle."""

from __future__ import annotations

from pathlib import Path

import pytest

from forecasting.registry.integrity import TamperedBundleError, directory_hashes, encode, verify


def _bundle(root: Path) -> str:
    (root / "artifacts").mkdir(parents=True)
    (root / "MLmodel").write_text("flavors: {}\n")
    (root / "artifacts" / "winners.parquet").write_bytes(b"PAR1 winners")
    return encode(directory_hashes(root))


def test_an_untouched_bundle_passes_and_the_download_note_is_ignored(tmp_path: Path):
    recorded = _bundle(tmp_path)
    (tmp_path / "registered_model_meta").write_text("model_name: forecasting\n")
    verify(tmp_path, recorded, "model m version 1")


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda root: (root / "artifacts" / "winners.parquet").write_bytes(b"PAR1 evil"), "changed: artifacts/winners.parquet"),
        (lambda root: (root / "MLmodel").unlink(), "missing: MLmodel"),
        (lambda root: (root / "artifacts" / "extra.pkl").write_bytes(b"\x80\x04"), "unexpected: artifacts/extra.pkl"),
    ],
)
def test_a_tampered_bundle_is_refused_naming_the_file(tmp_path: Path, tamper, message: str):
    recorded = _bundle(tmp_path)
    tamper(tmp_path)
    with pytest.raises(TamperedBundleError, match=f"model m version 1: .*{message}"):
        verify(tmp_path, recorded, "model m version 1")


def test_a_version_without_recorded_hashes_is_refused(tmp_path: Path):
    _bundle(tmp_path)
    with pytest.raises(TamperedBundleError, match="no artifact hashes"):
        verify(tmp_path, None, "model m version 1")
