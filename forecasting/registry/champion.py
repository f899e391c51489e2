"""Champion or challenger: the rule, the undecidable case, pins and operator overrides.

The evidence (``comparison``, ``evidence.summarize``) compares what both versions' selection
rules choose on the same backtest windows, scored on the next window, which neither chose on.
The new version takes the alias ``champion``
when its mean scaled quantile loss there is not worse than the champion's by more than
``registry.champion_margin``. When no series is comparable, ``registry.undecided`` says what
happens (``keep`` the champion or ``promote`` the new version), and a champion whose origin
is more than ``registry.max_champion_age_weeks`` older than the new version's is replaced
whatever that policy. A pinned champion is never replaced automatically, and an operator
can decide instead of the rule; every decision records who decided and why.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import pandas as pd

CHAMPION, CHALLENGER = "champion", "challenger"
TAG_PREFIX = "forecasting."
DECISION_PREFIX = f"{TAG_PREFIX}decision."
RULE = "rule"


@dataclass(frozen=True)
class Decision:
    """The alias a new version receives, and the evidence and reasons behind it."""

    alias: str
    reason: str
    margin: float
    compared_with_version: str = ""
    window_cutoff: str = ""
    series_compared: int = 0
    series_not_comparable: int = 0
    not_comparable: str = "{}"  # JSON: reason -> series
    weeks: int = 0
    new_loss: float = math.nan
    champion_loss: float = math.nan
    new_loss_in_sample: float = math.nan
    difference_se: float = math.nan
    share_new_better: float = math.nan
    champion_age_weeks: float = math.nan
    policy: str = ""
    decided_by: str = RULE
    operator_reason: str = ""

    def tags(self) -> dict[str, str]:
        return {f"{DECISION_PREFIX}{k}": str(v) for k, v in asdict(self).items()}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Decision:
        values = {k[len(DECISION_PREFIX):]: v for k, v in tags.items() if k.startswith(DECISION_PREFIX)}
        kwargs: dict[str, Any] = {}
        for field in fields(cls):
            if field.name not in values:
                continue
            text = values[field.name]
            kind = field.type if isinstance(field.type, str) else field.type.__name__
            kwargs[field.name] = float(text) if kind == "float" else int(text) if kind == "int" else text
        return cls(**{"reason": "", "margin": 0.0, **kwargs})

    def record(self) -> dict[str, Any]:
        """JSON-able (NaN as None)."""
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Policy:
    """What the configuration says about deciding."""

    margin: float = 0.0
    undecided: str = "keep"  # keep | promote
    max_champion_age_weeks: int | None = None


@dataclass(frozen=True)
class Context:
    """The champion a new version meets, and anything a person decided beforehand."""

    champion_version: str = ""
    champion_as_of: str = ""
    new_as_of: str = ""
    pinned_by: str = ""  # the champion is pinned: who pinned it, and why
    pinned_reason: str = ""
    operator_alias: str = ""  # champion | challenger: an operator's decision for this version
    operator: str = ""
    operator_reason: str = ""


def _age_weeks(context: Context) -> float:
    if not (context.champion_as_of and context.new_as_of):
        return math.nan
    return (pd.Timestamp(context.new_as_of) - pd.Timestamp(context.champion_as_of)) / pd.Timedelta(weeks=1)


def decide(evidence: dict[str, Any], context: Context, policy: Policy) -> Decision:
    """The alias of a new version from the evidence (``evidence.summarize`` plus window dates)."""
    if not context.champion_version:
        if context.operator_alias:
            return Decision(context.operator_alias, f"decided by {context.operator}: no champion yet", policy.margin,
                            decided_by=context.operator, operator_reason=context.operator_reason)
        return Decision(CHAMPION, "no champion yet", policy.margin)
    age = _age_weeks(context)
    base = {k: v for k, v in evidence.items() if k in {f.name for f in fields(Decision)}}
    base.update(compared_with_version=context.champion_version, champion_age_weeks=age, margin=policy.margin)

    def made(alias: str, reason: str, **extra: Any) -> Decision:
        return Decision(alias=alias, reason=reason, **{**base, **extra})

    if context.operator_alias:
        return made(context.operator_alias, f"decided by {context.operator}: {context.operator_reason}",
                    decided_by=context.operator, operator_reason=context.operator_reason)
    if context.pinned_by:
        return made(CHALLENGER, f"the champion (version {context.champion_version}) is pinned by "
                                f"{context.pinned_by}: {context.pinned_reason}")
    if age < 0:
        return made(CHALLENGER, "its origin is older than the champion's (a backfill never takes over by itself)")
    compared = int(base.get("series_compared", 0))
    if compared:
        new, old = float(base["new_loss"]), float(base["champion_loss"])
        change = new / old - 1.0 if old > 0 else math.inf if new > 0 else 0.0
        if new <= old * (1.0 + policy.margin):
            return made(CHAMPION, f"held-out loss {change:+.1%} against the champion on {compared} series "
                                  f"(margin {policy.margin:.1%})")
        return made(CHALLENGER, f"held-out loss {change:+.1%} against the champion on {compared} series: "
                                f"worse by more than the margin {policy.margin:.1%}")
    stale = policy.max_champion_age_weeks is not None and age > policy.max_champion_age_weeks
    why = _undecidable_why(base)
    if stale:
        return made(CHAMPION, f"undecidable ({why}); the champion is {age:.0f} weeks older than "
                              f"max_champion_age_weeks {policy.max_champion_age_weeks}", policy="stale_champion")
    if policy.undecided == "promote":
        return made(CHAMPION, f"undecidable ({why}); policy undecided: promote", policy="promote")
    return made(CHALLENGER, f"undecidable ({why}); policy undecided: keep", policy="keep")


def _undecidable_why(evidence: dict[str, Any]) -> str:
    reasons = json.loads(str(evidence.get("not_comparable", "{}")) or "{}")
    if not reasons:
        return "no series in common with the champion"
    top = max(reasons.items(), key=lambda item: item[1])
    return f"no series comparable; most often: {top[0]} ({top[1]} series)"
