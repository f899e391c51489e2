"""Command line: ``forecasting run``, ``validate``, ``explain``, ``demo-data``, ``plugins list|check``,
``registry show|promote|rollback|pin|unpin``.

With ``--json`` the last line of stdout is one JSON object (also on failure, with
an ``error`` key); progress and logs go to stderr. Exit codes: 0 success,
2 bad configuration, 3 unreadable or malformed data, 4 circuit breaker, 130 interrupted
(Ctrl-C: everything started is stopped, the JSON line still printed), 1 other (and
``plugins check``: a failed check). ``forecasting.errors`` says which error ends with which code.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from forecasting import __version__
from forecasting.data.contract import ID
from forecasting.errors import (
    EXIT_CIRCUIT_BREAKER,
    EXIT_CONFIG,
    EXIT_DATA,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    exit_code,
)

__all__ = ["EXIT_CIRCUIT_BREAKER", "EXIT_CONFIG", "EXIT_DATA", "EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK",
           "format_summary", "main"]

logger = logging.getLogger("forecasting")


def _quantile_list(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"quantiles must be numbers separated by commas, got {text!r}") from exc


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML settings file (flags override it)")
    parser.add_argument("--data", type=Path, help="history in long format (Parquet or CSV: one row per series and period); default: the demo panel")
    parser.add_argument("--id-col", help="the file's column holding the series id (default unique_id; config data.id_col)")
    parser.add_argument("--time-col", help="the file's column holding the date (default ds; config data.time_col)")
    parser.add_argument("--target-col", help="the file's column holding the value to forecast (default y; config data.target_col)")
    parser.add_argument("--date-format", help="how the dates are written, e.g. %%d/%%m/%%Y (default: recognised; config data.date_format)")
    parser.add_argument("--freq", help="pandas frequency of the series, e.g. W-SUN, W-FRI, MS, D (default W-SUN)")
    parser.add_argument("--horizon", type=int, help="periods to forecast (default 13)")
    parser.add_argument("--season-length", type=int, help="periods per season (default implied by --freq: W 52, M 12, Q 4, D 7, H 24)")
    parser.add_argument("--quantiles", type=_quantile_list, help="comma-separated quantiles; 0.5 is always added (default 0.1,0.5,0.9)")
    parser.add_argument("--as-of", help="forecast origin date; later rows are trimmed (default: the last date in the data)")
    parser.add_argument("--output", type=Path, help="output root for run folders and published tables (default ./output)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object on the last line of stdout")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every model failure to stderr")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    flags = {
        ("data", "path"): args.data,
        ("data", "id_col"): args.id_col,
        ("data", "time_col"): args.time_col,
        ("data", "target_col"): args.target_col,
        ("data", "date_format"): args.date_format,
        ("forecast", "freq"): args.freq,
        ("forecast", "horizon"): args.horizon,
        ("forecast", "season_length"): args.season_length,
        ("forecast", "quantiles"): args.quantiles,
        ("forecast", "as_of"): args.as_of,
        ("output", "root"): args.output,
        ("compute", "n_shards"): getattr(args, "n_shards", None),
        ("compute", "scheduler_address"): getattr(args, "scheduler", None),
        ("compute", "executor"): getattr(args, "executor", None),
    }
    if getattr(args, "no_progress", False) or args.json:
        flags[("compute", "progress")] = False
    overrides: dict[str, Any] = {}
    for (section, key), value in flags.items():
        if value is not None:
            overrides.setdefault(section, {})[key] = value
    return overrides


class _UsageError(Exception):
    """A command-line usage error (argparse's), raised instead of exiting so --json can report it."""

    def __init__(self, parser: argparse.ArgumentParser, message: str) -> None:
        super().__init__(message)
        self.parser = parser


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(self, message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(prog="forecasting", description="AutoML forecasting: per-series model selection on a quantile-loss backtest.")
    parser.add_argument("--version", action="version", version=f"forecasting {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the weekly job: validate, backtest, select, forecast, publish")
    _add_settings_flags(run)
    run.add_argument("--series", help="comma-separated series ids: run (and republish) only these")
    run.add_argument("--n-shards", type=int, help="number of shards to split the series into")
    run.add_argument("--scheduler", help="Dask scheduler address tcp://HOST:PORT (default: an embedded local cluster)")
    run.add_argument("--executor", choices=["dask", "serial"], help="run shards on Dask (default) or one after another in this process")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(handler=_run)

    validate = commands.add_parser("validate", help="check the data without running models")
    _add_settings_flags(validate)
    validate.set_defaults(handler=_validate)

    explain = commands.add_parser("explain", help="why a series got its forecast: leaderboard, winner's margin, backtest chart")
    explain.add_argument("series_id", metavar="SERIES_ID", help="the series to explain")
    explain.add_argument("--output", type=Path, help="output root holding runs/, as for run (default: output.root of --config, ./output)")
    explain.add_argument("--run", dest="run_id", help="run id (default: the newest finished run under the output root)")
    explain.add_argument("--to", type=Path, dest="destination", help="directory to write the explanation into (default: the run folder)")
    explain.add_argument("--format", choices=["html", "png"], default="html", help="html (leaderboard, verdict, charts) or png (the backtest chart)")
    explain.add_argument("--config", type=Path, help="YAML settings file (for output.root)")
    explain.add_argument("--json", action="store_true", help="print the result as one JSON object on the last line of stdout")
    explain.add_argument("-v", "--verbose", action="store_true")
    explain.set_defaults(handler=_explain)

    demo = commands.add_parser("demo-data", help="write the deterministic demo panel to a file")
    demo.add_argument("path", type=Path, help="output file (.parquet or .csv)")
    demo.add_argument("--n-series", type=int, default=300)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--json", action="store_true", help="print the result as JSON")
    demo.add_argument("-v", "--verbose", action="store_true")
    demo.set_defaults(handler=_demo_data)

    plugins = commands.add_parser("plugins", help="installed plug-in models: list them, or run the conformance kit on one")
    plugin_commands = plugins.add_subparsers(dest="plugins_command", required=True)
    listing = plugin_commands.add_parser("list", help="name, version, owner, tags, conformance and whether the config activates it")
    check = plugin_commands.add_parser("check", help="run the conformance kit on one model; exit 1 if any check fails")
    check.add_argument("name", help="the model's name (a plug-in's entry point name, or a built-in)")
    check.add_argument("--output", type=Path, help="output root whose plugins/ folder caches the verdict (default ./output)")
    for sub in (listing, check):
        sub.add_argument("--config", type=Path, help="YAML settings file: what is active, and where verdicts are cached")
        sub.add_argument("--json", action="store_true", help="print the result as one JSON object on the last line of stdout")
        sub.add_argument("-v", "--verbose", action="store_true")
    listing.set_defaults(handler=_plugins_list)
    check.set_defaults(handler=_plugins_check)

    from forecasting.cli_registry import add_registry_parser

    add_registry_parser(commands)
    return parser


def _settings(args: argparse.Namespace):
    from forecasting.config import load_settings

    return load_settings(args.config, _overrides(args))


def _demo_notice(settings: Any) -> None:
    """Say on stderr when the input is the built-in demo panel (no --data, no data.path)."""
    if settings.data.path is None:
        print(f"note: no --data given: using the built-in demo panel ({settings.demo.n_series} synthetic series); "
              "pass --data FILE for your own history", file=sys.stderr)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    settings = _settings(args)  # first: a bad setting fails before the heavy imports below
    _demo_notice(settings)

    from forecasting.orchestration.executors import shutdown_embedded_cluster
    from forecasting.orchestration.local import run_weekly

    series = [s.strip() for s in args.series.split(",") if s.strip()] if args.series else None
    try:
        return run_weekly(settings, series)
    finally:
        shutdown_embedded_cluster()


def _validate(args: argparse.Namespace) -> dict[str, Any]:
    from forecasting.orchestration.checks import validate_only

    settings = _settings(args)
    _demo_notice(settings)
    return validate_only(settings)


def _explain(args: argparse.Namespace) -> dict[str, Any]:
    from forecasting.config import load_settings
    from forecasting.orchestration.explain_series import explain

    root = args.output or load_settings(args.config).output.root
    return explain(args.series_id, args.destination, root, args.run_id, args.format)


def _demo_data(args: argparse.Namespace) -> dict[str, Any]:
    from forecasting.data.demo import generate_demo_panel

    panel = generate_demo_panel(n_series=args.n_series, seed=args.seed)
    args.path.parent.mkdir(parents=True, exist_ok=True)
    if args.path.suffix.lower() == ".csv":
        panel.to_csv(args.path, index=False)
    else:
        panel.to_parquet(args.path, index=False)
    return {"path": str(args.path.resolve()), "rows": len(panel), "series": int(panel[ID].nunique())}


def _plugin_settings(args: argparse.Namespace):
    from forecasting.config import load_settings

    output = getattr(args, "output", None)
    return load_settings(args.config, {"output": {"root": output}} if output else {})


def _plugins_list(args: argparse.Namespace) -> dict[str, Any]:
    from forecasting.activation.verdicts import plugin_table

    return {"plugins": plugin_table(_plugin_settings(args))}


def _plugins_check(args: argparse.Namespace) -> dict[str, Any]:
    from forecasting.activation.verdicts import check_and_store

    outcome = check_and_store(args.name, _plugin_settings(args))
    failed = [r["check"] for r in outcome["results"] if r["status"] == "fail"]
    outcome.update(failed=failed, exit_code=EXIT_FAILURE if failed else EXIT_OK)
    return outcome


def _format_plugins(result: dict[str, Any]) -> str:
    if "plugins" in result:
        rows = result["plugins"]
        if not rows:
            return "no plug-ins installed (entry point group forecasting.models)"
        header = ("name", "version", "owner", "active", "conformance", "tags")
        table = [header, *[tuple(str(row[k]) for k in ("name", "version", "owner", "active", "conformance", "tags")) for row in rows]]
        widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
        return "\n".join("  ".join([*(cell.ljust(w) for cell, w in zip(line, widths, strict=False)), line[-1]]) for line in table)
    lines = [f"{result['name']}: {result['source']}"]
    for r in result["results"]:
        detail = r["reason"] if r["status"] != "pass" else r["description"]
        lines.append(f"{r['status'].upper():4}  {r['check']:24}  {detail}")
    counts = {s: sum(r["status"] == s for r in result["results"]) for s in ("pass", "fail", "skip")}
    verdict = "conformant" if not result["failed"] else "NOT conformant: it cannot be activated"
    lines.append(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped: {verdict}")
    return "\n".join(lines)


def _format_validate(result: dict[str, Any]) -> str:
    def counts(mapping: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in mapping.items()) or "none"

    lines = [
        f"input: {result['source']} (as of {result['as_of'][:10]}, freq {result['freq']})",
        f"series: {result['n_input_series']}, quarantined {result['quarantined']} ({result['quarantine_share']:.1%})"
        + (f", rows after as-of trimmed {result['trimmed_rows']}" if result["trimmed_rows"] else ""),
        f"quarantine reasons: {counts(result['quarantine_reasons'])}",
        f"repairs: {counts(result['repairs'])}",
        f"lifecycle: {counts(result['lifecycle'])}",
    ]
    limit = result["max_quarantine_share"]
    if result["circuit_breaker"] == "tripped":
        lines.append(f"circuit breaker: TRIPPED ({result['quarantine_share']:.1%} quarantined, limit {limit:.0%}): "
                     f"`forecasting run` would stop here with exit code {EXIT_CIRCUIT_BREAKER}")
    else:
        lines.append(f"circuit breaker: ok ({result['quarantine_share']:.1%} quarantined, limit {limit:.0%})")
    return "\n".join(lines)


def format_summary(command: str, result: dict[str, Any]) -> str:
    """A short human-readable summary of a command's result."""
    if command == "plugins":
        return _format_plugins(result)
    if command == "validate":
        return _format_validate(result)
    if command == "explain":
        return "\n".join([f"{result['series']} in run {result['run_id']}: {result['status']}", *result["verdict"], result["path"]])
    if command != "run":
        return json.dumps(result, indent=2, default=str)
    lines = [f"run {result['run_id']} (as of {result['as_of'][:10]})"]
    lines.append("series by status: " + ", ".join(f"{k} {v}" for k, v in result["counts"].items()))
    mix = sorted(result["winner_mix"].items(), key=lambda item: -item[1])
    lines.append("models used: " + ", ".join(f"{k} {v}" for k, v in mix))
    loss = result.get("backtest_loss")
    if loss:
        ratio = loss["winner_mean_scaled_quantile_loss"] / loss["naive_mean_scaled_quantile_loss"]
        lines.append(
            f"backtest scaled quantile loss: selected {loss['winner_mean_scaled_quantile_loss']:.3f} vs naive "
            f"{loss['naive_mean_scaled_quantile_loss']:.3f} ({ratio:.1%} of naive, {loss['series_compared']} series, in sample)"
        )
    estimate = result.get("out_of_sample")
    if estimate:
        losses = estimate["loss"]
        naive = f", naive {losses['Naive']:.3f}" if losses.get("Naive") is not None else ""
        lines.append(
            f"out of sample (latest backtest window, chosen on the earlier ones): selected {losses['selected']:.3f}, "
            f"ensemble {losses.get('Ensemble') or float('nan'):.3f}{naive} ({estimate['n_series']} series)"
        )
    coverage = result.get("calibration", {}).get("coverage_by_candidate", {})
    if "Ensemble" in coverage:
        lines.append(f"backtest coverage of the outermost quantiles: ensemble {coverage['Ensemble']:.1%} "
                     f"(nominal {result['calibration']['nominal']:.0%})")
    lines.append(f"forecasts:   {result['forecasts']}")
    lines.append(f"published:   {result.get('published')}")
    lines.append(f"ledger:      {result['ledger']}")
    lines.append(f"leaderboard: {result['leaderboard']}")
    registered = result.get("mlflow")
    if registered:
        lines.append(f"registered:  {registered['model_name']} version {registered['version']} ({registered['alias']}) "
                     f"at {registered['tracking_uri']}")
    isolation = result.get("plugin_isolation")
    if isolation:
        lines.append(f"plug-ins:    {', '.join(isolation['plugins'])} ({isolation['process']})")
        lines.append(f"plug-in network isolation: {isolation['network']}")
    timings = result.get("timings_seconds", {})
    if timings:
        lines.append("wall time: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    if result.get("report"):
        lines.append(f"metrics:     {result['metrics']}")
        lines.append(f"report:      {result['report']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _build_parser().parse_args(argv)
    except _UsageError as exc:  # a bad flag or value: exit 2 like argparse, and keep the --json contract
        exc.parser.print_usage(sys.stderr)
        print(f"{exc.parser.prog}: error: {exc}", file=sys.stderr)
        if "--json" in argv:
            print(json.dumps({"error": str(exc), "error_type": "UsageError", "exit_code": EXIT_CONFIG}))
        return EXIT_CONFIG
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    quiet = "warning" if args.verbose else "error"
    for noisy in ("distributed", "tornado"):
        logging.getLogger(noisy).setLevel(quiet.upper())
    # distributed and mlflow set up their own loggers when first imported (later, lazily)
    import dask.config

    dask.config.set({"logging": {"distributed": quiet}})
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", quiet.upper())
    handler: Callable[[argparse.Namespace], dict[str, Any]] = args.handler
    try:
        result = handler(args)
    except KeyboardInterrupt:  # Ctrl-C: the handlers' clean-up (finally blocks) has run by now
        print(f"forecasting {args.command}: interrupted (Ctrl-C); stopped", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": "interrupted (Ctrl-C)", "error_type": "KeyboardInterrupt",
                              "exit_code": EXIT_INTERRUPTED}))
        return EXIT_INTERRUPTED
    except Exception as exc:
        code = exit_code(exc)
        if code == EXIT_FAILURE:
            logger.exception("forecasting %s failed", args.command)
        else:
            print(f"error: {exc}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": str(exc), "error_type": type(exc).__name__, "exit_code": code}))
        return code
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print(format_summary(args.command, result))
    return int(result.get("exit_code", EXIT_OK))


if __name__ == "__main__":
    sys.exit(main())
