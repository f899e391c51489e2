"""``forecasting explain``: why one series got its forecast in a run, from the run folder, drawn by
forecasting.reporting.explain."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from forecasting.config import ConfigError
from forecasting.data.contract import ID, STATUS_NOT_STARTED, STATUS_QUARANTINED
from forecasting.orchestration.run_catalog import (
    Run,
    RunFolder,
    finished_runs,
    read_series,
    runs_dir,
    series_history,
)
from forecasting.reporting import explain as explaining


def newest_run(output_root: str | Path) -> RunFolder:
    """The most recently prepared finished run under an output root."""
    root = Path(output_root).resolve()
    finished = finished_runs(root)
    if not finished:
        raise ConfigError(f"no finished run under {runs_dir(root)}: run `forecasting run` first, or pass the output root with --output")
    return max(finished, key=lambda folder: folder.manifest.stat().st_mtime)


def _series_frames(folder: RunFolder, series_id: str) -> dict[str, pd.DataFrame]:
    leaderboard = read_series(folder.output("leaderboard"), [series_id])
    scores = read_series(folder.output("scores"), [series_id])
    per_window = (scores.pivot_table(index="candidate", columns="cutoff", values="scaled_quantile_loss")
                  if not scores.empty else pd.DataFrame())
    top = leaderboard.sort_values("rank")["candidate"].head(explaining.TOP_CANDIDATES).tolist()
    backtest = read_series(folder.output("backtest"), [series_id])
    backtest = backtest[backtest["candidate"].isin(top)] if not backtest.empty else backtest
    return {
        "leaderboard": leaderboard.drop(columns=ID, errors="ignore"),
        "per_window": per_window,
        "backtest": backtest,
        "history": series_history(folder, [series_id]),
        "forecast": read_series(folder.output("forecasts"), [series_id]),
    }


def explain(series_id: str, output_dir: str | Path | None = None, output_root: str | Path = "output",
            run_id: str | None = None, fmt: str = "html") -> dict[str, Any]:
    """Write why ``series_id`` got its forecast in a run (default: the newest) to ``output_dir``
    (default: the run folder)."""
    if fmt not in ("html", "png"):
        raise ConfigError(f"explain: format must be html or png, got {fmt!r}")
    if run_id is not None:
        runs = runs_dir(Path(output_root).resolve())
        folder = RunFolder(runs / run_id)
        if Path(run_id).name != run_id or run_id in (".", "..") or folder.path.resolve().parent != runs:
            raise ConfigError(f"explain: {run_id!r} is not a run id (a folder name under {runs}); "
                              "to explain a run under another output root, pass --output")
        if not folder.is_finished:
            raise ConfigError(f"explain: no finished run {run_id} under {runs}")
    else:
        folder = newest_run(output_root)
    settings = Run.load(folder.path).settings
    ledger = read_series(folder.output("ledger"), [series_id])
    if ledger.empty:
        raise ConfigError(f"explain: series {series_id!r} is not in run {folder.run_id} (neither trained nor quarantined)")
    row = {k: (None if isinstance(v, float) and pd.isna(v) else v) for k, v in ledger.iloc[0].to_dict().items()}
    if row["status"] in (STATUS_QUARANTINED, STATUS_NOT_STARTED):
        frames: dict[str, pd.DataFrame] = {"leaderboard": pd.DataFrame(columns=["candidate", "rank", "n_windows"]),
                                           "per_window": pd.DataFrame()}
    else:
        frames = _series_frames(folder, series_id)
    explanation = explaining.SeriesExplanation(series_id, folder.run_id, row, **frames)
    output = Path(output_dir) if output_dir is not None else folder.path
    output.mkdir(parents=True, exist_ok=True)
    path = folder.explanation(output, series_id, fmt)
    if fmt == "png":
        path.write_bytes(explaining.render_png(explanation, settings.forecast.quantiles))
    else:
        path.write_text(explaining.render_html(explanation, settings.forecast.quantiles), encoding="utf-8")
    return {"series": series_id, "run_id": folder.run_id, "status": explanation.status,
            "winner": explanation.winner, "model": explanation.model, "margin": explanation.margin(),
            "verdict": explanation.verdict(), "path": str(path)}
