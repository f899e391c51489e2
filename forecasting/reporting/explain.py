"""Why a series got the forecast it got: its leaderboard, the winner's margin, its backtest.

Built from the run's frames restricted to one series; rendered as HTML (everything)
or PNG (the backtest fan chart, with the verdict in its title).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forecasting.data.contract import (
    STATUS_ENDED,
    STATUS_FALLBACK,
    STATUS_NEW,
    STATUS_NOT_STARTED,
    STATUS_QUARANTINED,
    quantile_label,
)
from forecasting.reporting import charts
from forecasting.reporting.report import forecast_band, non_negative, template_environment

TOP_CANDIDATES = 3
BACKTEST_CONTEXT = 52  # periods of history drawn before the first backtest window
# Ledger columns a switching-margin rule may record; shown when present.
SWITCHING_COLUMNS = ("previous_winner", "switching_margin", "kept_previous", "switch_reason")


@dataclass
class SeriesExplanation:
    """One series of one run, as the explain command shows it."""

    unique_id: str
    run_id: str
    ledger: dict[str, Any]
    leaderboard: pd.DataFrame  # candidate, scaled_quantile_loss, mase, coverage, n_windows, rank, is_winner
    per_window: pd.DataFrame  # candidate x cutoff -> scaled quantile loss
    backtest: pd.DataFrame = field(default_factory=pd.DataFrame)  # top candidates' backtest rows
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    forecast: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def status(self) -> str:
        return str(self.ledger.get("status", ""))

    @property
    def winner(self) -> str:
        return str(self.ledger.get("winner") or "")

    @property
    def model(self) -> str:
        return str(self.ledger.get("model") or "")

    def margin(self) -> dict[str, float | str] | None:
        """The winner's lead over the best other candidate: absolute and relative loss difference
        (negative when a rule such as a switching margin kept a winner that was not the best)."""
        board = self.leaderboard.sort_values("rank")
        won = board[board["is_winner"].astype(bool)] if "is_winner" in board else board.iloc[0:0]
        if len(board) < 2 or won.empty:
            return None
        best, second = won.iloc[0], board[~board["is_winner"].astype(bool)].iloc[0]
        lead = float(second["scaled_quantile_loss"] - best["scaled_quantile_loss"])
        relative = lead / float(second["scaled_quantile_loss"]) if second["scaled_quantile_loss"] else float("nan")
        return {"winner": str(best["candidate"]), "runner_up": str(second["candidate"]),
                "winner_loss": float(best["scaled_quantile_loss"]), "runner_up_loss": float(second["scaled_quantile_loss"]),
                "margin": lead, "relative_margin": relative}

    def floor(self) -> float | None:
        """0 for a series whose history has no negative value (its forecasts are drawn from 0 up)."""
        return 0.0 if non_negative(self.history) else None

    def switching(self) -> dict[str, str]:
        return {c: str(self.ledger[c]) for c in SWITCHING_COLUMNS if c in self.ledger and str(self.ledger[c]) not in ("", "nan", "None")}

    def verdict(self) -> list[str]:
        """The explanation in sentences, most important first."""
        status, reason, detail = self.status, str(self.ledger.get("reason") or ""), str(self.ledger.get("detail") or "")
        if status == STATUS_QUARANTINED:
            return [f"{self.unique_id} was quarantined by input validation: {reason}" + (f" ({detail})" if detail else ""),
                    "It was not trained and has no forecast in this run."]
        if status == STATUS_ENDED:
            return [f"{self.unique_id} has ended ({detail or reason}): no forecast is published for it."]
        if status == STATUS_NOT_STARTED:
            return [f"{self.unique_id} has no data at or before the as-of date ({detail or reason}): "
                    "it was not trained and has no forecast in this run."]
        lines = []
        if status == STATUS_NEW:
            lines.append(f"{self.unique_id} has too short a history to backtest ({int(self.ledger.get('n_obs') or 0)} observations): "
                         f"it is forecast by {self.model} without a competition.")
        margin = self.margin()
        if margin is not None and margin["margin"] < 0:
            lines.append(
                f"{margin['winner']} was kept as the winner (mean scaled quantile loss {margin['winner_loss']:.4f}) although "
                f"{margin['runner_up']} scored {-margin['margin']:.4f} ({-margin['relative_margin']:.1%}) lower."
            )
        elif margin is not None:
            lines.append(
                f"{margin['winner']} won the backtest with mean scaled quantile loss {margin['winner_loss']:.4f}, "
                f"{margin['margin']:.4f} ({margin['relative_margin']:.1%}) below the runner-up {margin['runner_up']} "
                f"({margin['runner_up_loss']:.4f}), over {int(self.leaderboard['n_windows'].max())} backtest windows."
            )
        elif self.winner:
            lines.append(f"{self.winner} was the only candidate that completed the backtest.")
        members = str(self.ledger.get("ensemble_members") or "")
        if members:
            lines.append(f"The winner is the median of the top candidates: {members.replace(',', ', ')}.")
        switching = self.switching()
        if switching:
            lines.append("Switching margin: " + "; ".join(f"{k} = {v}" for k, v in switching.items()) + ".")
        elif self.winner:
            lines.append("No switching margin applied: the run records no previous winner for this series.")
        if status == STATUS_FALLBACK:
            lines.append(f"The winner's forecast was not published ({reason}: {detail}); the fallback {self.model} was.")
        failures = str(self.ledger.get("failures") or "")
        if failures:
            lines.append(f"Failures on the way: {failures}.")
        repairs = str(self.ledger.get("repairs") or "")
        if repairs:
            lines.append(f"Repairs of the published forecast: {repairs}.")
        return lines


def _backtest_bands(explanation: SeriesExplanation, quantiles: Sequence[float]) -> list[charts.Band]:
    bands = []
    floor = explanation.floor()
    board = explanation.leaderboard.sort_values("rank")
    for i, candidate in enumerate(board["candidate"].head(TOP_CANDIDATES)):
        rows = explanation.backtest[explanation.backtest["candidate"] == candidate]
        for j, (_, window) in enumerate(rows.groupby("cutoff")):
            band = forecast_band(window.sort_values("ds"), quantiles, candidate if j == 0 else "_nolegend_", floor)
            bands.append(charts.Band(band.label, band.ds, band.lower, band.median, band.upper, charts.palette(i)))
    return bands


def backtest_chart(explanation: SeriesExplanation, quantiles: Sequence[float]) -> bytes | None:
    """The top candidates' backtest forecasts (p50 and outer band per window) over the actuals."""
    if explanation.backtest.empty:
        return None
    first = explanation.backtest["ds"].min()
    history = explanation.history[explanation.history["ds"] < first].tail(BACKTEST_CONTEXT)
    actuals = explanation.backtest.drop_duplicates("ds")[["ds", "y"]]
    levels = sorted(quantiles)
    title = (f"{explanation.unique_id}: backtest of the top candidates, p50 and "
             f"{quantile_label(levels[0])}-{quantile_label(levels[-1])} (winner {explanation.winner or '-'})")
    return charts.fan_chart(title, history, _backtest_bands(explanation, quantiles), actuals, size=(9.0, 3.6))


def forecast_chart(explanation: SeriesExplanation, quantiles: Sequence[float]) -> bytes | None:
    if explanation.forecast.empty:
        return None
    band = forecast_band(explanation.forecast, quantiles, f"{explanation.model} p50", explanation.floor())
    title = f"{explanation.unique_id}: published forecast ({explanation.model}, {explanation.status})"
    return charts.fan_chart(title, explanation.history, [band], size=(9.0, 3.0))


def render_html(explanation: SeriesExplanation, quantiles: Sequence[float]) -> str:
    backtest, forecast = backtest_chart(explanation, quantiles), forecast_chart(explanation, quantiles)
    per_window = explanation.per_window
    return template_environment().get_template("explain.html.j2").render(
        e=explanation,
        verdict=explanation.verdict(),
        board=explanation.leaderboard.sort_values("rank").to_dict("records"),
        cutoffs=[pd.Timestamp(c).strftime("%Y-%m-%d") for c in per_window.columns],
        per_window={c: [None if np.isnan(v) else float(v) for v in row] for c, row in zip(per_window.index, per_window.to_numpy(float), strict=True)},
        backtest_chart=charts.data_uri(backtest) if backtest else None,
        forecast_chart=charts.data_uri(forecast) if forecast else None,
    )


def render_png(explanation: SeriesExplanation, quantiles: Sequence[float]) -> bytes:
    """The backtest chart (or the published forecast, or the verdict alone when there is neither)."""
    chart = backtest_chart(explanation, quantiles) or forecast_chart(explanation, quantiles)
    return chart if chart is not None else charts.text_image(explanation.verdict())
