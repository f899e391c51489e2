"""One module per task of the weekly run, in its order: prepare, train_shard, finalize (with register),
publish, report, retention.

Each module's ``*_task`` function is what the DAG task (``dags/weekly_forecast.py``) calls, with
JSON-able ids and paths in and out; the CLI's run (``orchestration/local.py``) calls the same ones.
"""
