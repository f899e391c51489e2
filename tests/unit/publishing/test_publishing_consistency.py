"""Publishing as readers see it: one version across Parquet and SQL, under SIGKILL and with the
database gone; a run never takes away the forecasts of series it failed; the folder is a dataset."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from forecasting.config import Settings, load_settings
from forecasting.data.validation import CircuitBreakerError
from forecasting.orchestration.local import run_weekly
from forecasting.orchestration.steps.publish import publish_forecasts

pytestmark = pytest.mark.slow

DATES = pd.date_range("2023-01-01", periods=60, freq="W-SUN")
AS_OF = DATES[-1]


def _panel(n: int = 10, level: float = 10.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.concat([pd.DataFrame({"unique_id": f"s{i:02d}", "ds": DATES, "y": level + rng.uniform(0, 5, DATES.size)})
                      for i in range(n)], ignore_index=True)


def _settings(root: Path, data: Path, **validation: float) -> Settings:
    return load_settings(overrides={
        "data": {"path": str(data)},
        "forecast": {"horizon": 4, "season_length": 4, "as_of": f"{AS_OF:%Y-%m-%d}"},
        "models": {"candidates": [{"name": "Naive"}, {"name": "HistoricAverage"}], "fallback": ["Naive", "HistoricAverage"]},
        "ensemble": {"enabled": False},
        "validation": validation,
        "compute": {"executor": "serial", "n_shards": 1, "progress": False},
        "output": {"root": str(root)},
        "registry": {"enabled": False}, "reporting": {"enabled": False},
    })


def _run(tmp_path: Path, name: str, panel: pd.DataFrame, root: Path, **validation: float) -> dict:
    data = tmp_path / f"{name}.parquet"
    panel.to_parquet(data)
    return run_weekly(_settings(root, data, **validation))


def _sql_rows(root: Path) -> pd.DataFrame:
    engine = sa.create_engine(f"sqlite:///{root / 'forecasting.db'}")
    try:
        with engine.connect() as connection:
            return pd.read_sql("SELECT * FROM forecasts ORDER BY unique_id, ds", connection)
    finally:
        engine.dispose()


def test_series_a_run_fails_keep_their_forecasts_and_the_breaker_counts_them(tmp_path):
    root = tmp_path / "out"
    first = _run(tmp_path, "clean", _panel(), root)
    published = pd.read_parquet(first["published"])
    assert published["unique_id"].nunique() == 10

    poisoned = _panel(seed=1)
    hit = poisoned["unique_id"].isin(["s01", "s04", "s07"]) & (poisoned["ds"] == DATES[30])
    poisoned.loc[hit, "y"] = 1e300  # finite, so validation lets it through; every model then fails
    with pytest.raises(CircuitBreakerError) as info:
        _run(tmp_path, "poisoned", poisoned, root)
    assert "3 of 10 series (30.0%) have no publishable forecast" in str(info.value)
    assert "all_models_failed 3" in str(info.value) and "validation.max_quarantine_share" in str(info.value)
    pd.testing.assert_frame_equal(pd.read_parquet(first["published"]), published)  # nothing published
    assert set(_sql_rows(root)["run_id"]) == {first["run_id"]}

    second = _run(tmp_path, "poisoned", poisoned, root, max_quarantine_share=0.5)
    ledger = pd.read_parquet(second["ledger"]).set_index("unique_id")
    failed = ["s01", "s04", "s07"]
    assert (ledger.loc[failed, "reason"] == "all_models_failed").all()
    assert (ledger.loc[failed, "published"] == f"stale: the rows of run {first['run_id']} are kept").all()
    assert (ledger.drop(index=failed)["published"] == "yes").all()
    assert second["stale_series"] == 3
    table = pd.read_parquet(second["published"])
    assert table["unique_id"].nunique() == 10  # not 7: the failed series keep their earlier forecasts
    runs = table.drop_duplicates("unique_id").set_index("unique_id")["run_id"]
    assert (runs[failed] == first["run_id"]).all() and (runs.drop(index=failed) == second["run_id"]).all()
    pd.testing.assert_frame_equal(_sql_rows(root).drop(columns=["forecast_origin", "ds"]),
                                  table.drop(columns=["forecast_origin", "ds"]), check_dtype=False)


def test_the_published_folder_reads_as_one_dataset(tmp_path):
    root = tmp_path / "out"
    _run(tmp_path, "a", _panel(), root)
    data = tmp_path / "earlier.parquet"
    _panel(seed=3).to_parquet(data)
    earlier = _settings(root, data)
    earlier.forecast.as_of = f"{DATES[-5]:%Y-%m-%d}"
    run_weekly(earlier)
    folder = root / "forecasts"
    frame = pd.read_parquet(folder)
    assert frame["forecast_origin"].nunique() == 2 and len(frame) == 2 * 10 * 4
    assert not frame.duplicated(["unique_id", "forecast_origin", "ds"]).any()
    query = f"SELECT count(*), count(DISTINCT forecast_origin) FROM read_parquet('{folder}/*.parquet')"
    assert duckdb.sql(query).fetchall() == [(80, 2)]
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{folder}/**/*.parquet')").fetchall() == [(80,)]
    assert sorted(p.name for p in folder.iterdir()) == [f"origin={DATES[-5]:%Y-%m-%d}.parquet", f"origin={AS_OF:%Y-%m-%d}.parquet"]


def test_an_unreachable_database_publishes_nothing(tmp_path, monkeypatch):
    root = tmp_path / "out"
    first = _run(tmp_path, "first", _panel(), root)
    second = _run(tmp_path, "second", _panel(seed=5), root)
    table = Path(second["published"])
    before = table.read_bytes()
    monkeypatch.setenv("FORECASTING_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2")
    with pytest.raises(sa.exc.OperationalError):
        publish_forecasts(first["run_dir"])  # publishing the first run again, with the database gone
    assert table.read_bytes() == before  # the Parquet table did not move ahead of the database
    monkeypatch.delenv("FORECASTING_DATABASE_URL")
    publish_forecasts(first["run_dir"])
    assert set(pd.read_parquet(table)["run_id"]) == set(_sql_rows(root)["run_id"]) == {first["run_id"]}


# Imports once, then forks one publisher per request (each cycles the runs until it is SIGKILLed).
PUBLISHERS = """
import os, sys
from forecasting.orchestration.steps.publish import publish_forecasts
runs = sys.argv[1:]
for _ in sys.stdin:
    pid = os.fork()
    if pid == 0:
        try:
            while True:
                for run in runs:
                    publish_forecasts(run)
        finally:
            os._exit(1)
    print(pid, flush=True)
    os.waitpid(pid, 0)
    print("reaped", flush=True)
"""


def _versions(root: Path) -> tuple[set[str], set[str]]:
    parquet = set(pd.read_parquet(root / "forecasts" / f"origin={AS_OF:%Y-%m-%d}.parquet")["run_id"])
    return parquet, set(_sql_rows(root)["run_id"])


def test_parquet_and_sql_stay_one_version_through_sigkills(tmp_path):
    root = tmp_path / "out"
    runs = [_run(tmp_path, f"v{i}", _panel(seed=10 + i), root) for i in range(3)]
    order = [r["run_dir"] for r in runs]
    ids = [r["run_id"] for r in runs]
    follows = {ids[i]: ids[(i + 1) % 3] for i in range(3)}  # the publisher cycles v0, v1, v2, v0, ...
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    rng = random.Random(14)
    ahead = []
    driver = subprocess.Popen([sys.executable, "-c", PUBLISHERS, *order], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        for _ in range(12):
            driver.stdin.write("go\n")
            driver.stdin.flush()
            publisher = int(driver.stdout.readline())
            time.sleep(rng.uniform(0.1, 1.0))
            os.kill(publisher, signal.SIGKILL)
            assert driver.stdout.readline().strip() == "reaped"
            parquet, sql = _versions(root)
            assert len(parquet) == 1 and len(sql) == 1, (parquet, sql)  # each store holds one whole version
            (p,), (s,) = parquet, sql
            if p != s:
                ahead.append(f"parquet {p} vs sql {s}")
                assert p != follows[s], f"the Parquet table is newer than the SQL table: {p} after {s}"
    finally:
        driver.stdin.close()
        driver.wait(timeout=60)
    publish_forecasts(order[0])  # the next publish finishes an interrupted one first
    parquet, sql = _versions(root)
    assert parquet == sql == {ids[0]}
    leftovers = [p.name for p in (root / "forecasts").iterdir() if not p.name.endswith(".parquet") or p.name.startswith(".")]
    staged = list((root / ".publishing" / "staging").iterdir())
    assert leftovers == [] and staged == []
    print(f"\n12 SIGKILLs: {len(ahead)} left the SQL table one version ahead until the next publish: {ahead}")


def test_a_publish_cleans_what_killed_writers_and_the_earlier_layout_left(tmp_path):
    root = tmp_path / "out"
    first = _run(tmp_path, "first", _panel(), root)
    folder = root / "forecasts"
    stem = f"origin={AS_OF:%Y-%m-%d}"
    litter = [folder / f".{stem}.parquet.{pid}.tmp" for pid in (101, 202)] + [folder / f"{stem}.lock"]
    for path in litter:
        path.write_bytes(b"left by a killed writer")
    staged = root / ".publishing" / "staging" / f"{stem}.deadbeef.parquet"
    staged.write_bytes(b"never committed")
    publish_forecasts(first["run_dir"])
    assert sorted(p.name for p in folder.iterdir()) == [f"{stem}.parquet"]
    assert not staged.exists()
    assert len(pd.read_parquet(folder)) == 40
