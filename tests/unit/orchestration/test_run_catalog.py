import json
from pathlib import Path

import pandas as pd

from forecasting.config import Settings
from forecasting.orchestration.run_catalog import Manifest, Run, RunFolder

WRITTEN = {
    "run_id": "20251228-abc", "as_of": "2025-12-28T00:00:00", "started_at": 1767000000.123, "source": "demo(...)",
    "series_subset": None, "data_fingerprint": "f00", "n_input_series": 3, "trimmed_rows": 0, "validation_notes": [],
    "shards": [0, 1], "n_shards": 2, "settings": Settings().model_dump(mode="json"), "versions": {"pandas": "2.3"},
    "plugins": {}, "plugin_isolation": {}, "previous_winners_version": "4",
}


def test_a_manifest_reads_typed_and_writes_back_the_same_keys_and_values():
    manifest = Manifest.from_json(WRITTEN)
    assert manifest.as_of == pd.Timestamp("2025-12-28") and manifest.shards == [0, 1]
    assert manifest.switching_version == "4"
    assert manifest.to_json() == WRITTEN


def test_an_older_manifest_without_the_later_keys_still_loads():
    manifest = Manifest.from_json({"run_id": "r", "as_of": "2025-01-05", "shards": [0], "n_shards": 1, "settings": {}})
    assert manifest.plugin_isolation is None and manifest.switching_version == "" and manifest.started_at is None


def test_a_run_loads_its_manifest_and_settings_once(tmp_path: Path):
    folder = RunFolder.under(tmp_path, "20251228-abc")
    folder.write_json(folder.manifest, WRITTEN)
    run = Run.load(folder.path)
    assert run.run_id == "20251228-abc" and run.settings == Settings()
    assert Run.of(run) is run
    assert json.loads(folder.manifest.read_text()) == WRITTEN
