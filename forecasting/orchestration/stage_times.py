"""Wall time per stage of a run (``timings.json``), recorded by whoever runs the stage."""

from __future__ import annotations

from pathlib import Path

from forecasting.orchestration.run_catalog import RunFolder

REPORT_STAGE = "report"
STAGES = ("prepare", "train", "finalize", "publish", REPORT_STAGE)


def record_stage_time(run_dir: str | Path, stage: str, seconds: float) -> None:
    """Add one stage's wall time to the run's timings.json (a rerun of the stage overwrites it)."""
    folder = RunFolder(Path(run_dir))
    timings = folder.read_json(folder.timings) if folder.timings.exists() else {}
    timings[stage] = round(float(seconds), 3)
    folder.write_json(folder.timings, timings)


def stage_times(folder: RunFolder) -> dict[str, float]:
    """Recorded stage times in run order (timings.json itself is written with sorted keys)."""
    path = folder.timings
    timings = {str(k): float(v) for k, v in folder.read_json(path).items()} if path.exists() else {}
    order = {stage: i for i, stage in enumerate(STAGES)}
    return dict(sorted(timings.items(), key=lambda item: (order.get(item[0], len(order)), item[0])))
