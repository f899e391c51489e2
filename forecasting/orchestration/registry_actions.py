"""``forecasting registry``: an operator's action on the registered model (show, promote, rollback, pin, unpin)."""

from __future__ import annotations

from typing import Any

from forecasting.config import Settings

REGISTRY_ACTIONS = ("show", "promote", "rollback", "pin", "unpin")


def registry_action(settings: Settings, action: str, version: str | None = None, by: str = "", reason: str = "",
                    pin: bool = False, limit: int = 10) -> dict[str, Any]:
    """An operator's action on the registry (``registry.operator``): show, promote, rollback, pin, unpin."""
    from mlflow import MlflowClient

    from forecasting.registry import operator
    from forecasting.registry.store import quiet_mlflow, store_lock, tracking_uri

    if action not in REGISTRY_ACTIONS:
        raise ValueError(f"unknown registry action {action!r}; one of {', '.join(REGISTRY_ACTIONS)}")
    quiet_mlflow()
    uri = tracking_uri(settings)
    client, name = MlflowClient(uri, uri), settings.registry.model_name
    if action == "show":
        return {**operator.show(client, name, version, limit), "tracking_uri": uri}
    with store_lock(settings):  # never between a registration's decision and its alias
        if action == "promote":
            if not version:
                raise operator.RegistryActionError("promote needs a VERSION")
            done = operator.promote(client, name, version, by, reason, pin)
        elif action == "rollback":
            done = operator.rollback(client, name, by, reason, version, pin)
        elif action == "pin":
            done = operator.pin_champion(client, name, by, reason, version)
        else:
            done = operator.unpin(client, name, by, reason)
    return {**done, "model_name": name, "champion": operator.alias_version(client, name, "champion"), "tracking_uri": uri}
