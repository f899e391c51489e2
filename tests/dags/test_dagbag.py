"""The DAG files parse without errors, quickly, and without importing the heavy libraries.

BundleDagBag is the DagBag the dag-processor and the task runner use: it puts the DAGs folder on
sys.path, so the DAG files can import their shared helpers (dags/dag_support.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from airflow_env import AIRFLOW_ENV, DAGS

PARSE_BUDGET_SECONDS = 2.0
HEAVY = ["pandas", "statsforecast", "lightgbm", "mlflow", "mlforecast", "forecasting"]

_SCRIPT = textwrap.dedent(
    f"""
    import json, sys
    from airflow.dag_processing.dagbag import BundleDagBag
    before = {{name for name in {HEAVY!r} if name in sys.modules}}
    bag = BundleDagBag(dag_folder={str(DAGS)!r}, bundle_path={str(DAGS)!r})
    print(json.dumps({{
        "dags": sorted(bag.dag_ids),
        "errors": {{str(k): str(v) for k, v in bag.import_errors.items()}},
        "stats": [[s.file, s.duration.total_seconds() if hasattr(s.duration, "total_seconds") else s.duration] for s in bag.dagbag_stats],
        "heavy": sorted({{name for name in {HEAVY!r} if name in sys.modules}} - before),
    }}))
    """
)


def _parse() -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env={**os.environ, **AIRFLOW_ENV}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_dags_parse_quickly_without_errors_or_heavy_imports() -> None:
    parsed = _parse()
    assert parsed["errors"] == {}
    assert parsed["dags"] == ["retrain_trigger", "weekly_forecast"]
    assert parsed["heavy"] == [], f"parsing the DAG files imported {parsed['heavy']}"
    assert len(parsed["stats"]) == 2
    for file, seconds in parsed["stats"]:
        assert seconds < PARSE_BUDGET_SECONDS, f"{file} took {seconds:.2f} s to parse"
