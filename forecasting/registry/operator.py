"""What a person can do to the registry: promote, roll back, pin, unpin, and look.

Every action is recorded with who and why: as a log entry on the registered model (a tag
``forecasting.log.<UTC time>`` holding JSON, so the history is in MLflow itself) and on the
version it concerns (``forecasting.operator.*`` tags). A pin (registered-model tag
``forecasting.pin``) freezes the ``champion`` alias: automatic decisions then leave it where
it is, until an operator moves it or unpins it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from forecasting.config import ConfigError
from forecasting.registry.versions import AS_OF_TAG

CHAMPION, CHALLENGER = "champion", "challenger"
PIN_TAG = "forecasting.pin"
LOG_PREFIX = "forecasting.log."
OPERATOR_PREFIX = "forecasting.operator."


class RegistryActionError(ConfigError):
    """An operator action that cannot be done (unknown version, nothing to roll back to, no reason)."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _exception() -> type[Exception]:
    from mlflow.exceptions import MlflowException

    return MlflowException


def alias_version(client: Any, name: str, alias: str) -> str:
    """The version an alias points at ("" when it points nowhere)."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except _exception():
        return ""


def current_pin(client: Any, name: str) -> dict[str, Any] | None:
    """The pin of the champion alias: {version, by, reason, at}, or None."""
    try:
        tags = client.get_registered_model(name).tags
    except _exception():
        return None
    text = tags.get(PIN_TAG, "")
    return json.loads(text) if text else None


def log_entries(client: Any, name: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The registry's action log, newest first."""
    try:
        tags = client.get_registered_model(name).tags
    except _exception():
        return []
    entries = [json.loads(v) for k, v in sorted(tags.items(), reverse=True) if k.startswith(LOG_PREFIX)]
    return entries[:limit] if limit else entries


def record(client: Any, name: str, action: str, by: str, reason: str, version: str = "", previous: str = "") -> dict[str, Any]:
    """Append one entry to the log (and tag the version it concerns)."""
    at = _now()
    entry = {"at": at, "action": action, "version": version, "previous": previous, "by": by, "reason": reason}
    client.set_registered_model_tag(name, f"{LOG_PREFIX}{at}", json.dumps(entry, sort_keys=True))
    if version:
        client.set_model_version_tag(name, version, f"{OPERATOR_PREFIX}{action}", json.dumps(entry, sort_keys=True))
    return entry


def _require(by: str, reason: str) -> None:
    if not by.strip() or not reason.strip():
        raise RegistryActionError("an operator action needs who (--by) and why (--reason)")


def _check_version(client: Any, name: str, version: str) -> None:
    try:
        client.get_model_version(name, str(version))
    except _exception() as exc:
        raise RegistryActionError(f"model {name} has no version {version}") from exc


def move_champion(client: Any, name: str, version: str, action: str, by: str, reason: str) -> dict[str, Any]:
    """Point ``champion`` at ``version`` and record it (the challenger alias leaves a promoted version)."""
    previous = alias_version(client, name, CHAMPION)
    client.set_registered_model_alias(name, CHAMPION, str(version))
    if alias_version(client, name, CHALLENGER) == str(version):
        client.delete_registered_model_alias(name, CHALLENGER)
    pin = current_pin(client, name)
    if pin is not None:  # the pin freezes the alias wherever an operator puts it
        set_pin(client, name, str(version), pin["by"], pin["reason"])
    return record(client, name, action, by, reason, str(version), previous)


def set_pin(client: Any, name: str, version: str, by: str, reason: str) -> dict[str, Any]:
    pin = {"version": str(version), "by": by, "reason": reason, "at": _now()}
    client.set_registered_model_tag(name, PIN_TAG, json.dumps(pin, sort_keys=True))
    return pin


def promote(client: Any, name: str, version: str, by: str, reason: str, pin: bool = False) -> dict[str, Any]:
    """Make ``version`` the champion (optionally pinned)."""
    _require(by, reason)
    _check_version(client, name, version)
    entry = move_champion(client, name, str(version), "promote", by, reason)
    if pin:
        set_pin(client, name, str(version), by, reason)
        record(client, name, "pin", by, reason, str(version))
    return {**entry, "pinned": current_pin(client, name)}


def previous_champion(client: Any, name: str) -> str:
    """The version that was champion before the current one (from the log; "" if unknown)."""
    current = alias_version(client, name, CHAMPION)
    for entry in log_entries(client, name):
        if entry.get("version") == current and entry.get("previous") and entry["action"] in ("promote", "rollback", "auto"):
            return str(entry["previous"])
    return ""


def rollback(client: Any, name: str, by: str, reason: str, to: str | None = None, pin: bool = False) -> dict[str, Any]:
    """Make the previous champion (or ``to``) the champion again."""
    _require(by, reason)
    target = str(to) if to else previous_champion(client, name)
    if not target:
        raise RegistryActionError(f"model {name}: no earlier champion is recorded; name one with --to VERSION")
    _check_version(client, name, target)
    entry = move_champion(client, name, target, "rollback", by, reason)
    if pin:
        set_pin(client, name, target, by, reason)
        record(client, name, "pin", by, reason, target)
    return {**entry, "pinned": current_pin(client, name)}


def pin_champion(client: Any, name: str, by: str, reason: str, version: str | None = None) -> dict[str, Any]:
    """Freeze the champion alias (promoting ``version`` first when given)."""
    _require(by, reason)
    if version and version != alias_version(client, name, CHAMPION):
        return promote(client, name, str(version), by, reason, pin=True)
    current = alias_version(client, name, CHAMPION)
    if not current:
        raise RegistryActionError(f"model {name} has no champion to pin")
    set_pin(client, name, current, by, reason)
    return {**record(client, name, "pin", by, reason, current), "pinned": current_pin(client, name)}


def unpin(client: Any, name: str, by: str, reason: str) -> dict[str, Any]:
    """Let automatic decisions move the champion again."""
    _require(by, reason)
    pin = current_pin(client, name)
    if pin is None:
        raise RegistryActionError(f"model {name}: the champion is not pinned")
    client.delete_registered_model_tag(name, PIN_TAG)
    return {**record(client, name, "unpin", by, reason, str(pin.get("version", ""))), "pinned": None}


def _version_row(version: Any) -> dict[str, Any]:
    tags = version.tags
    return {
        "version": str(version.version),
        "run_id": tags.get("forecasting.run_id", ""),
        "as_of": tags.get(AS_OF_TAG, ""),
        "aliases": sorted(getattr(version, "aliases", []) or []),
        "decision": tags.get("forecasting.decision.alias", ""),
        "reason": tags.get("forecasting.decision.reason", ""),
        "decided_by": tags.get("forecasting.decision.decided_by", ""),
        "new_loss": tags.get("forecasting.decision.new_loss", ""),
        "champion_loss": tags.get("forecasting.decision.champion_loss", ""),
        "series_compared": tags.get("forecasting.decision.series_compared", ""),
    }


def show(client: Any, name: str, version: str | None = None, limit: int = 10) -> dict[str, Any]:
    """Champion, challenger, pin, the newest versions with their decisions, and the action log."""
    try:
        client.get_registered_model(name)
    except _exception() as exc:
        raise RegistryActionError(f"no registered model {name}") from exc
    result: dict[str, Any] = {
        "model_name": name,
        "champion": alias_version(client, name, CHAMPION),
        "challenger": alias_version(client, name, CHALLENGER),
        "pinned": current_pin(client, name),
        "log": log_entries(client, name, limit),
    }
    found = client.search_model_versions(f"name = '{name}'")
    rows = sorted((_version_row(v) for v in found), key=lambda r: -int(r["version"]))
    result["versions"] = rows[:limit]
    if version:
        _check_version(client, name, str(version))
        details = client.get_model_version(name, str(version))
        result["version"] = {**_version_row(details), "tags": dict(sorted(details.tags.items()))}
    return result
