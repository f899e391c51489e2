"""The figures of a run report, computed from the run's frames (pure functions, no I/O).

Every number the report shows comes from here, so a test can check it against the
ledger and leaderboard directly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from forecasting.data.contract import ID, STATUS_FALLBACK, STATUS_QUARANTINED, quantile_label

BASELINE = "Naive"
_RATIO_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
_EXAMPLES = 5


@dataclass(frozen=True)
class ReasonCount:
    """How many series share one reason, with a few of them as examples."""

    reason: str
    n_series: int
    examples: list[str]


@dataclass(frozen=True)
class ModelCount:
    """A model: how often it won the backtest and how often its forecast was published."""

    model: str
    winner: int
    published: int


@dataclass(frozen=True)
class LossComparison:
    """Per-series winner loss against a reference (the naive baseline or the previous run)."""

    reference: str
    series_compared: int
    mean_loss: float
    reference_mean_loss: float
    share_better: float
    ratio_quantiles: dict[str, float]
    ratios: np.ndarray = field(repr=False)
    winner_changed: int | None = None


@dataclass(frozen=True)
class Coverage:
    """Empirical coverage of the outer quantile interval by the backtest winners."""

    lower: str
    upper: str
    nominal: float
    series: int
    mean: float
    share_within_10pp: float
    per_series: np.ndarray = field(repr=False)
    by_horizon: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CandidateFigures:
    """One candidate of the run: where it was backtested, its loss, how often it won and failed."""

    candidate: str
    kind: str  # "built-in", "plug-in", "ensemble"
    series: int  # series it was backtested on
    mean_loss: float  # mean scaled quantile loss over those series (nan when none)
    median_loss: float
    wins: int  # series whose backtest winner it was
    published: int  # series whose published forecast it made
    failures: int  # series where it failed at least once (backtest, refit or quality gate)
    coverage: float = float("nan")  # backtest coverage of the outermost quantiles after calibration
    raw_coverage: float = float("nan")  # ... of its own (native) intervals, before calibration


@dataclass(frozen=True)
class FailureCount:
    """Series where one model failed at one stage, grouped by the kind of failure."""

    model: str
    stage: str  # backtest, refit, quality gate
    kind: str  # the error type (and the isolation outcome of a plug-in: timeout, crash, memory)
    n_series: int
    examples: list[str]


@dataclass(frozen=True)
class PluginFigures:
    """A plug-in that was configured: its version, how it ran, and what it did in this run."""

    name: str
    distribution: str  # dist==version
    process: str
    network: str
    limits: dict[str, float]
    series: int
    wins: int
    published: int
    failures: dict[str, int]  # isolation outcome (timeout, crash, memory, error, ...) -> series


@dataclass
class RunFigures:
    """Everything the run report shows, as numbers."""

    run_id: str
    as_of: str
    n_series: int
    counts: dict[str, int]
    quarantine_reasons: list[ReasonCount]
    fallback_reasons: list[ReasonCount]
    models: list[ModelCount]
    vs_naive: LossComparison | None
    vs_previous: LossComparison | None
    previous_run_id: str | None
    coverage: Coverage | None
    timings_seconds: dict[str, float]
    candidates: list[CandidateFigures] = field(default_factory=list)
    failures: list[FailureCount] = field(default_factory=list)
    plugins: list[PluginFigures] = field(default_factory=list)
    decision: dict[str, Any] | None = None  # registration.json: version, alias and the decision's numbers
    out_of_sample: dict[str, Any] | None = None  # summary.json's out_of_sample block, as recorded


def reason_counts(ledger: pd.DataFrame, status: str) -> list[ReasonCount]:
    """Series of one status grouped by reason, most frequent first."""
    rows = ledger[ledger["status"] == status]
    if rows.empty:
        return []
    reasons = rows["reason"].fillna("").replace("", "(none)")
    out = []
    for reason, group in rows.groupby(reasons, sort=False):
        ids = sorted(group[ID].astype(str))
        out.append(ReasonCount(str(reason), len(ids), ids[:_EXAMPLES]))
    return sorted(out, key=lambda r: (-r.n_series, r.reason))


def model_counts(ledger: pd.DataFrame) -> list[ModelCount]:
    """Backtest winners and published models per model, most published first."""
    winners = ledger.get("winner", pd.Series(dtype=object)).fillna("")
    published = ledger.get("model", pd.Series(dtype=object)).fillna("")
    won = winners[winners != ""].value_counts()
    used = published[published != ""].value_counts()
    names = sorted(set(won.index) | set(used.index))
    rows = [ModelCount(str(n), int(won.get(n, 0)), int(used.get(n, 0))) for n in names]
    return sorted(rows, key=lambda r: (-r.published, -r.winner, r.model))


def winner_losses(leaderboard: pd.DataFrame) -> pd.Series:
    """Each series' backtest winner's mean scaled quantile loss."""
    return leaderboard[leaderboard["is_winner"]].set_index(ID)["scaled_quantile_loss"]


def _comparison(
    current: pd.Series, reference: pd.Series, label: str, winner_changed: int | None = None
) -> LossComparison | None:
    common = current.index.intersection(reference.index)
    if not len(common):
        return None
    now, ref = current[common].to_numpy(float), reference[common].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(ref > 0, now / ref, np.where(now > 0, np.inf, 1.0))
    finite = ratios[np.isfinite(ratios)]
    quantiles = {f"p{round(q * 100)}": float(np.quantile(finite, q)) for q in _RATIO_QUANTILES} if finite.size else {}
    return LossComparison(
        reference=label,
        series_compared=int(len(common)),
        mean_loss=float(now.mean()),
        reference_mean_loss=float(ref.mean()),
        share_better=float(np.mean(now < ref)),
        ratio_quantiles=quantiles,
        ratios=ratios,
        winner_changed=winner_changed,
    )


def compare_with_naive(leaderboard: pd.DataFrame) -> LossComparison | None:
    """Winner loss against the naive baseline's, on the series where both were backtested."""
    naive = leaderboard[leaderboard["candidate"] == BASELINE].set_index(ID)["scaled_quantile_loss"]
    return _comparison(winner_losses(leaderboard), naive, f"{BASELINE} baseline")


def changed_winners(ledger: pd.DataFrame, previous_ledger: pd.DataFrame) -> pd.Index:
    """Series whose backtest winner differs from the previous run's (both non-empty)."""
    now = ledger.set_index(ID)["winner"].fillna("")
    before = previous_ledger.set_index(ID)["winner"].fillna("")
    common = now.index.intersection(before.index)
    now, before = now[common], before[common]
    return common[(now != before) & (now != "") & (before != "")]


def compare_with_previous(
    leaderboard: pd.DataFrame, ledger: pd.DataFrame, previous_leaderboard: pd.DataFrame, previous_ledger: pd.DataFrame,
    previous_run_id: str,
) -> LossComparison | None:
    """Winner loss against the previous run's winner loss, on the series both runs backtested."""
    changed = len(changed_winners(ledger, previous_ledger))
    return _comparison(winner_losses(leaderboard), winner_losses(previous_leaderboard), f"previous run {previous_run_id}", changed)


def coverage(leaderboard: pd.DataFrame, backtest: pd.DataFrame | None, quantiles: Sequence[float]) -> Coverage | None:
    """Coverage of [lowest, highest] quantile by each series' backtest winner; by horizon from the backtest rows."""
    levels = sorted(quantiles)
    if len(levels) < 2:
        return None
    winners = leaderboard[leaderboard["is_winner"]]
    per_series = winners["coverage"].to_numpy(float)
    per_series = per_series[np.isfinite(per_series)]
    if not per_series.size:
        return None
    nominal = levels[-1] - levels[0]
    lower, upper = quantile_label(levels[0]), quantile_label(levels[-1])
    by_horizon: dict[int, float] = {}
    if backtest is not None and not backtest.empty:
        rows = backtest.merge(winners[[ID, "candidate"]], on=[ID, "candidate"])
        if not rows.empty:
            horizon = rows.groupby([ID, "cutoff"])["ds"].rank(method="first").astype("int64")
            inside = (rows["y"] >= rows[lower]) & (rows["y"] <= rows[upper])
            by_horizon = {int(h): float(v) for h, v in inside.groupby(horizon).mean().items()}
    return Coverage(
        lower=lower,
        upper=upper,
        nominal=float(nominal),
        series=int(per_series.size),
        mean=float(per_series.mean()),
        share_within_10pp=float(np.mean(np.abs(per_series - nominal) <= 0.1 + 1e-9)),
        per_series=per_series,
        by_horizon=by_horizon,
    )


_FAILURE_PATTERNS = (
    (re.compile(r"^(?P<model>[^:|]+?) cutoff \d+: (?P<kind>[A-Za-z_][\w.]*)(?::\s*(?P<detail>[\w-]+))?"), "backtest"),
    (re.compile(r"^(?P<model>[^:|]+?) future: (?P<kind>[A-Za-z_][\w.]*)(?::\s*(?P<detail>[\w-]+))?"), "future"),
    (re.compile(r"^(?P<kind>no_forecast): (?P<model>[^:|]+?)\s*$"), "future"),
    (re.compile(r"^quality_gate: (?P<model>[^:]+): (?P<kind>\S+)"), "quality gate"),
)
# The first word of an isolated plug-in's error says how its child process ended.
ISOLATION_OUTCOMES = ("timeout", "crash", "memory", "killed", "signal", "exit", "missing", "error")


def parse_failure(text: str) -> tuple[str, str, str]:
    """(model, stage, kind) of one ledger failure entry; ("?", "", text) when its form is unknown."""
    text = text.strip()
    for pattern, stage in _FAILURE_PATTERNS:
        match = pattern.match(text)
        if match:
            kind = match.group("kind").rstrip(":")
            detail = match.groupdict().get("detail")
            if kind == "IsolatedFitError" and detail:
                kind = f"{kind}: {detail}"
            return match.group("model").strip(), stage, kind
    return "?", "", text[:60]


def _failure_entries(ledger: pd.DataFrame) -> pd.DataFrame:
    """One row per (series, model, stage, kind) found in the ledger's failures column."""
    columns = [ID, "model", "stage", "kind"]
    if "failures" not in ledger:
        return pd.DataFrame(columns=columns)
    rows = []
    for unique_id, text in zip(ledger[ID].astype(str), ledger["failures"].fillna("").astype(str), strict=True):
        for entry in filter(None, (part.strip() for part in text.split(" | "))):
            rows.append((unique_id, *parse_failure(entry)))
    return pd.DataFrame(rows, columns=columns).drop_duplicates()


def failure_counts(ledger: pd.DataFrame) -> list[FailureCount]:
    """Series per model, stage and kind of failure, most frequent first."""
    entries = _failure_entries(ledger)
    out = []
    for (model, stage, kind), group in entries.groupby(["model", "stage", "kind"], sort=False):
        ids = sorted(group[ID].unique())
        out.append(FailureCount(str(model), str(stage), str(kind), len(ids), ids[:_EXAMPLES]))
    return sorted(out, key=lambda f: (-f.n_series, f.model, f.stage, f.kind))


def candidate_figures(
    leaderboard: pd.DataFrame, ledger: pd.DataFrame, configured: Sequence[str] = (), plugins: Sequence[str] = (),
    calibration: pd.DataFrame | None = None,
) -> list[CandidateFigures]:
    """Every configured candidate (and the ensembles that competed), in the configured order.

    ``calibration``: the run's calibration.parquet (coverage per pool, candidate and step).
    """
    coverages = _coverages(calibration)
    by_candidate = leaderboard.groupby("candidate") if not leaderboard.empty else None
    wins = leaderboard.loc[leaderboard["is_winner"].astype(bool), "candidate"].value_counts() if not leaderboard.empty else pd.Series(dtype=int)
    models = ledger.get("model", pd.Series(dtype=object)).fillna("")
    published = models[models != ""].value_counts()
    entries = _failure_entries(ledger)
    failed = entries.groupby("model")[ID].nunique() if not entries.empty else pd.Series(dtype=int)
    seen = list(leaderboard["candidate"].unique()) if not leaderboard.empty else []
    names = list(dict.fromkeys([*configured, *seen]))
    out = []
    for name in names:
        losses = by_candidate.get_group(name)["scaled_quantile_loss"] if by_candidate is not None and name in seen else pd.Series(dtype=float)
        kind = "plug-in" if name in plugins else "built-in" if name in configured else "ensemble" if configured else ""
        out.append(CandidateFigures(
            candidate=str(name), kind=kind, series=int(losses.size),
            mean_loss=float(losses.mean()) if losses.size else float("nan"),
            median_loss=float(losses.median()) if losses.size else float("nan"),
            wins=int(wins.get(name, 0)), published=int(published.get(name, 0)), failures=int(failed.get(name, 0)),
            **coverages.get(str(name), {}),
        ))
    return out


def _coverages(calibration: pd.DataFrame | None) -> dict[str, dict[str, float]]:
    """Per candidate: backtest coverage after and before calibration, weighted by the windows behind each step."""
    if calibration is None or calibration.empty:
        return {}
    frame = calibration[calibration["n_windows"] > 0]
    out: dict[str, dict[str, float]] = {}
    for label, part in frame.groupby("candidate"):
        weights = part["n_windows"].to_numpy(float)
        after, before = part["coverage"].to_numpy(float), part["raw_coverage"].to_numpy(float)
        known = np.isfinite(before)
        out[str(label)] = {
            "coverage": float(np.average(after, weights=weights)),
            "raw_coverage": float(np.average(before[known], weights=weights[known])) if known.any() else float("nan"),
        }
    return out


def plugin_figures(
    isolation: Mapping[str, Any] | None, versions: Mapping[str, str], candidates: Sequence[CandidateFigures],
    ledger: pd.DataFrame, labels: Mapping[str, Sequence[str]] | None = None,
) -> list[PluginFigures]:
    """Per configured plug-in: version, isolation, and its series, wins and failures by outcome.

    ``labels``: plug-in name -> the candidate labels it runs under (an alias), default the name.
    """
    if not isolation:
        return []
    entries = _failure_entries(ledger)
    rows = {c.candidate: c for c in candidates}
    out = []
    for name in isolation.get("plugins", []):
        own = list((labels or {}).get(name, [name]))
        mine = [rows[label] for label in own if label in rows]
        failures = entries[entries["model"].isin(own)]
        outcomes: dict[str, int] = {}
        for kind, group in failures.groupby("kind"):
            detail = str(kind).split(": ", 1)[-1] if str(kind).startswith("IsolatedFitError") else str(kind)
            outcomes[detail] = outcomes.get(detail, 0) + int(group[ID].nunique())
        limits = dict((isolation.get("limits") or {}).get(name, {}))
        out.append(PluginFigures(
            name=name, distribution=str(versions.get(name, "")), process=str(isolation.get("process", "")),
            network=str(isolation.get("network", "")), limits=limits,
            series=sum(c.series for c in mine), wins=sum(c.wins for c in mine), published=sum(c.published for c in mine),
            failures=dict(sorted(outcomes.items(), key=lambda item: -item[1])),
        ))
    return out


def collect_figures(
    run_id: str,
    as_of: str,
    ledger: pd.DataFrame,
    leaderboard: pd.DataFrame,
    quantiles: Sequence[float],
    backtest: pd.DataFrame | None = None,
    timings: Mapping[str, float] | None = None,
    previous: tuple[str, pd.DataFrame, pd.DataFrame] | None = None,
    configured: Sequence[str] = (),
    plugins: Mapping[str, Any] | None = None,
    decision: Mapping[str, Any] | None = None,
    out_of_sample: Mapping[str, Any] | None = None,
    calibration: pd.DataFrame | None = None,
) -> RunFigures:
    """The report's figures. ``previous``: (run id, ledger, leaderboard) of the run to compare with;
    ``configured``: the candidate labels in config order; ``plugins``: ``{"isolation": ..., "versions":
    ..., "labels": ...}`` from the manifest; ``decision``: registration.json; ``out_of_sample``: the
    summary's block of that name."""
    counts = {str(k): int(v) for k, v in ledger["status"].value_counts().sort_index().items()}
    vs_previous = None
    if previous is not None:
        previous_id, previous_ledger, previous_board = previous
        vs_previous = compare_with_previous(leaderboard, ledger, previous_board, previous_ledger, previous_id)
    plugins = plugins or {}
    isolation = plugins.get("isolation") or {}
    plugin_labels = {name: list(labels) for name, labels in (plugins.get("labels") or {}).items()}
    plugin_candidates = [label for name in isolation.get("plugins", []) for label in plugin_labels.get(name, [name])]
    candidates = candidate_figures(leaderboard, ledger, configured, plugin_candidates, calibration)
    return RunFigures(
        candidates=candidates,
        failures=failure_counts(ledger),
        plugins=plugin_figures(isolation, plugins.get("versions") or {}, candidates, ledger, plugin_labels),
        decision=dict(decision) if decision else None,
        out_of_sample=dict(out_of_sample) if out_of_sample else None,
        run_id=run_id,
        as_of=as_of,
        n_series=int(len(ledger)),
        counts=counts,
        quarantine_reasons=reason_counts(ledger, STATUS_QUARANTINED),
        fallback_reasons=reason_counts(ledger, STATUS_FALLBACK),
        models=model_counts(ledger),
        vs_naive=compare_with_naive(leaderboard) if not leaderboard.empty else None,
        vs_previous=vs_previous,
        previous_run_id=previous[0] if previous else None,
        coverage=coverage(leaderboard, backtest, quantiles) if not leaderboard.empty else None,
        timings_seconds=dict(timings or {}),
    )


def figures_summary(figures: RunFigures) -> dict[str, Any]:
    """The headline figures as JSON-able data (for the run summary and tests)."""
    out: dict[str, Any] = {"counts": figures.counts, "n_series": figures.n_series}
    for name, comparison in (("vs_naive", figures.vs_naive), ("vs_previous", figures.vs_previous)):
        if comparison is not None:
            out[name] = {
                "series_compared": comparison.series_compared,
                "mean_loss": comparison.mean_loss,
                "reference_mean_loss": comparison.reference_mean_loss,
                "share_better": comparison.share_better,
            }
    if figures.coverage is not None:
        out["coverage"] = {"nominal": figures.coverage.nominal, "mean": figures.coverage.mean}
    return out
