"""Shards that failed after their retries: their series get fallback forecasts and are reported."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from forecasting.activation.verdicts import activate_plugins
from forecasting.config import CandidateSettings
from forecasting.data.contract import ID, STATUS_FALLBACK, STATUS_NEW, STATUS_OK
from forecasting.orchestration.run_catalog import Run, read_shard_lifecycle
from forecasting.orchestration.shards import shard_checkpoint
from forecasting.publishing.table import write_atomic
from forecasting.training.plan import TrainingPlan
from forecasting.training.selection_step import ShardResult, train_batch

SHARD_FAILED = "shard_failed"


def failed_shards(run: Run, shards: Sequence[int]) -> list[int]:
    """Shards without a valid checkpoint (a corrupt one counts as failed)."""
    failed = []
    for shard in shards:
        try:
            done = shard_checkpoint(run, shard) is not None
        except (OSError, ValueError):
            done = False
        if not done:
            failed.append(int(shard))
    return failed


def fallback_results(run: Run, shard: int) -> ShardResult:
    """Forecasts of a failed shard's series from the fallback models only (cheap, any history)."""
    folder, settings = run.folder, run.settings
    cheap = settings.model_copy(deep=True)
    cheap.models.candidates = [CandidateSettings(name=name) for name in settings.models.fallback]
    cheap.ensemble.enabled = False
    history = pd.read_parquet(folder.shard_input(shard))
    history = history.sort_values([ID, "ds"], kind="stable").reset_index(drop=True)
    lifecycle = read_shard_lifecycle(folder, shard)
    activate_plugins(cheap)  # a fallback that is a plug-in: its cached verdict
    result = train_batch(history, lifecycle, TrainingPlan.from_settings(cheap), settings.forecast.freq)
    published = result.ledger["status"].isin([STATUS_OK, STATUS_NEW, STATUS_FALLBACK])
    detail = f"shard {shard} failed after its retries; forecast by the fallback models {settings.models.fallback}"
    result.ledger.loc[published, "status"] = STATUS_FALLBACK
    result.ledger.loc[published, "reason"] = SHARD_FAILED
    result.ledger.loc[published, "detail"] = detail
    if not result.forecasts.empty:
        result.forecasts["status"] = STATUS_FALLBACK
    for name in ShardResult.FRAMES:
        write_atomic(getattr(result, name), folder.fallback_frame(shard, name))
    return result
