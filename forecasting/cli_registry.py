"""``forecasting registry show|promote|rollback|pin|unpin``: an operator's commands, each recorded with who and why."""

from __future__ import annotations

import argparse
import getpass
from pathlib import Path
from typing import Any


def add_registry_parser(commands: Any) -> None:
    """Add the ``registry`` command and its actions to the CLI's sub-commands."""
    registry = commands.add_parser("registry", help="the model registry: show versions and decisions; promote, roll back, pin")
    actions = registry.add_subparsers(dest="registry_command", required=True)
    show = actions.add_parser("show", help="champion, challenger, pin, the newest versions with their decisions, the action log")
    show.add_argument("version", nargs="?", help="also show every tag of this version (its decision's numbers)")
    show.add_argument("--limit", type=int, default=10, help="versions and log entries to list (default 10)")
    promote = actions.add_parser("promote", help="make VERSION the champion")
    promote.add_argument("version")
    rollback = actions.add_parser("rollback", help="make the previous champion (or --to VERSION) the champion again")
    rollback.add_argument("--to", dest="version", help="the version to roll back to (default: the previous champion)")
    pin = actions.add_parser("pin", help="freeze the champion (VERSION: promote it first): automatic decisions leave it")
    pin.add_argument("version", nargs="?")
    unpin = actions.add_parser("unpin", help="let automatic decisions move the champion again")
    for sub in (promote, rollback):
        sub.add_argument("--pin", action="store_true", help="also pin the champion")
    for sub in (promote, rollback, pin, unpin):
        sub.add_argument("--reason", required=True, help="why (recorded in the registry)")
        sub.add_argument("--by", default=None, help="who (recorded; default: the current user)")
    for sub in (show, promote, rollback, pin, unpin):
        sub.add_argument("--config", type=Path, help="YAML settings file (registry.tracking_uri, registry.model_name)")
        sub.add_argument("--tracking-uri", help="MLflow tracking URI (default: the config's, else the embedded store)")
        sub.add_argument("--model-name", help="registered model name (default: registry.model_name)")
        sub.add_argument("--output", type=Path, help="output root of the embedded store (default: output.root)")
        sub.add_argument("--json", action="store_true", help="print the result as one JSON object on the last line of stdout")
        sub.add_argument("-v", "--verbose", action="store_true")
        sub.set_defaults(handler=run_registry_command)


def run_registry_command(args: argparse.Namespace) -> dict[str, Any]:
    from forecasting.config import load_settings
    from forecasting.orchestration.registry_actions import registry_action

    registry = {k: v for k, v in (("tracking_uri", args.tracking_uri), ("model_name", args.model_name)) if v}
    overrides: dict[str, Any] = {"registry": registry} if registry else {}
    if args.output:
        overrides["output"] = {"root": args.output}
    settings = load_settings(args.config, overrides)
    by = getattr(args, "by", None) or getpass.getuser()
    return registry_action(settings, args.registry_command, getattr(args, "version", None), by,
                           getattr(args, "reason", "") or "", bool(getattr(args, "pin", False)), getattr(args, "limit", 10))
