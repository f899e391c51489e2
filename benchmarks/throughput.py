"""Throughput benchmark: the platform end to end against bare statsforecast, same panel.

One synthetic weekly panel (``generate_demo_panel(n_series=N, n_periods=156)``, default
N = 2,000) runs

(a) through the platform: ``forecasting.orchestration.local.run_weekly`` with the default
    settings except the output root (a temp dir) and progress (off): the default candidates,
    up to 6 backtest windows of 13 weeks per series (each keeping half of the history), raw
    forecasts of every candidate at every origin (expensive models fitted at the earliest
    cutoff and moved forward, the baselines computed for a whole batch with array
    operations), split-conformal calibration of every candidate on the pooled residuals, the
    pooled ensemble, forward-only selection, the quality gate, ledger, registry, publish and
    report. Executor dask = the embedded LocalCluster, one single-threaded worker process per
    core;
(b) through bare statsforecast: ``StatsForecast(models=[the same candidates with the same
    parameters], freq="W-SUN", n_jobs=<cores>)`` ``.cross_validation(df, h=13, n_windows=6,
    step_size=13, level=[80])`` plus ``.forecast(df, h=13, level=[80])``: the same windows,
    every model refitted at every cutoff. Models without native intervals get
    ``prediction_intervals=ConformalIntervals(h=13, n_windows=2)`` (the closest bare
    statsforecast has to the platform's calibration, which needs no extra fits). "bare, all
    models" runs every candidate on every series it can take (what a user of statsforecast
    would run); "bare, routed" runs the same model routing as the platform (continuous
    models + baselines on smooth series, intermittent models + baselines on intermittent
    ones, by the platform's own lifecycle classes): the same work, so its ratio isolates
    what the platform does differently. Bare does no calibration, ensemble or selection.

Every measurement runs in a fresh child process of this script (so each starts from a
bare interpreter); this process samples the RSS (and PSS) of that child and all its
descendants every 0.2 s. Wall time is measured inside the child around the work itself
(for the platform: run_weekly, which includes reading the input, starting the cluster,
finalize, registry, publish and report; for bare: reading the same Parquet file,
cross_validation, forecast). Both children run with OMP/MKL/OPENBLAS_NUM_THREADS=1 (what
Dask sets for its workers anyway). The machine's load average is printed with every table:
on a shared machine wall time says little without it, CPU time less so.

Forecasts are counted from what each side produced: platform = raw forecasts (one per
series x candidate x origin, the future included, read from the batches' raw files; a
moved-forward forecast counts like a fit); bare = series x models x (windows + 1). "fits
incl. conformal" adds the refits that bare's conformal intervals do inside every fit of a
model without native intervals (2 per fit); the platform calibrates without refits.

The scaling table runs the platform alone on panels of --sizes series (default candidates
unless --scaling-candidates names others) and reports wall time, the peak RSS of the main
process and of each Dask worker process (sampled per process), to show that a worker's
memory depends on its batch, not on the panel size.

Bytecode: where PYTHONDONTWRITEBYTECODE=1 and the venv holds no .pyc files, every fresh
process compiles statsforecast, statsmodels, scipy, dask ... from source (about 6 s of CPU
per process), and every spawned Dask worker pays it inside the platform's wall time. By
default the children therefore use a bytecode cache (PYTHONPYCACHEPREFIX in the work dir,
warmed by an unmeasured run first), as a venv installed with ``uv sync --compile-bytecode``
(what ``make setup`` does) has anyway; ``--cold-bytecode`` measures the environment exactly
as it is. The import-time probe line shows the difference.

``--breakdown K`` adds a single-process, single-core comparison on K smooth series (no Dask,
no files): bare statsforecast (n_jobs=1) against the platform's train_batch, with the
platform's time split into statsforecast itself, the raw backtest (``backtest_batch``) and
the selection step (``select_shard``). ``benchmarks/shard_profile.py`` splits one shard's
CPU time per candidate.

Usage (from the project root)::

    .venv/bin/python benchmarks/throughput.py                       # 2,000 series, then 1,000 and 10,000 alone
    .venv/bin/python benchmarks/throughput.py --series 40 --sizes 40,80 --output-json /tmp/t.json
    .venv/bin/python benchmarks/throughput.py --series 300 --bare routed --skip-smooth --skip-scaling
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Self

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:  # runnable as a plain script from anywhere
    sys.path.insert(0, str(PROJECT_ROOT))

FREQ = "W-SUN"
HORIZON = 13
SEASON = 52
N_WINDOWS = 6  # backtest.n_windows of the default settings
LEVEL = 80
N_PERIODS = 156
DEFAULT_SCALING_CANDIDATES = ""  # the default candidates
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

# The default candidates as statsforecast constructors with the platform's parameters
# (forecasting/models/statsforecast_models.py; season_length from the W-SUN frequency).
# native = has its own prediction intervals; routing = the platform's demand types.
SF_MODELS: dict[str, dict[str, Any]] = {
    "AutoETS": {"params": {"season_length": SEASON}, "native": True, "demand": ("smooth",)},
    "AutoTheta": {"params": {"season_length": SEASON}, "native": True, "demand": ("smooth",)},
    "AutoCES": {"params": {"season_length": SEASON}, "native": True, "demand": ("smooth",)},
    "SeasonalNaive": {"params": {"season_length": SEASON}, "native": True, "demand": ("smooth", "intermittent")},
    "Naive": {"params": {}, "native": True, "demand": ("smooth", "intermittent")},
    "HistoricAverage": {"params": {}, "native": True, "demand": ("smooth", "intermittent")},
    "WindowAverage": {"params": {"window_size": 13}, "native": False, "demand": ("smooth", "intermittent")},
    "CrostonOptimized": {"params": {}, "native": False, "demand": ("intermittent",)},
    "ADIDA": {"params": {}, "native": False, "demand": ("intermittent",)},
    "IMAPA": {"params": {}, "native": False, "demand": ("intermittent",)},
    "TSB": {"params": {"alpha_d": 0.2, "alpha_p": 0.2}, "native": False, "demand": ("intermittent",)},
}
CONFORMAL_WINDOWS = 2
# Bare statsforecast with conformal intervals needs N_WINDOWS * h + CONFORMAL_WINDOWS * h + 1
# observations for cross_validation (2 conformal windows of h on the shortest training cut of n - 6h).
BARE_MIN_LENGTH = N_WINDOWS * HORIZON + CONFORMAL_WINDOWS * HORIZON + 1


def cpu_seconds() -> float:
    """CPU time of this process and of every descendant it has reaped (user + system)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def busy_core_seconds() -> float:
    """CPU time the whole machine spent busy (every process), for the contention figure."""
    import psutil

    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


# --------------------------------------------------------------------------------------
# memory sampling (in the parent, over a child process tree)
# --------------------------------------------------------------------------------------
class PeriodicSampler:
    """Calls ``sample`` every ``interval`` seconds on a background thread while in a ``with`` block
    (until ``sample`` returns False)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set() and self.sample():
            self._stop.wait(self.interval)

    def sample(self) -> bool:
        raise NotImplementedError


class TreeSampler(PeriodicSampler):
    """Samples RSS and PSS of a process and all its descendants every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        import psutil

        super().__init__(interval)
        self._psutil = psutil
        self.root = psutil.Process(pid)
        self.peak_rss_total = 0
        self.peak_pss_total = 0
        self.peak_rss_by_pid: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self.n_samples = 0

    def sample(self) -> bool:
        psutil = self._psutil
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return False
        rss_total = pss_total = 0
        for proc in procs:
            try:
                rss = proc.memory_info().rss
                try:
                    pss = proc.memory_full_info().pss
                except (psutil.AccessDenied, AttributeError):
                    pss = rss
                if proc.pid not in self.names:
                    self.names[proc.pid] = " ".join(proc.cmdline()[:3])[:120]
            except psutil.Error:
                continue  # exited between listing and reading
            rss_total += rss
            pss_total += pss
            self.peak_rss_by_pid[proc.pid] = max(self.peak_rss_by_pid.get(proc.pid, 0), rss)
        self.peak_rss_total = max(self.peak_rss_total, rss_total)
        self.peak_pss_total = max(self.peak_pss_total, pss_total)
        self.n_samples += 1
        return True


def child_env(workdir: Path, cold_bytecode: bool) -> dict[str, str]:
    """Environment of a measured child: single-threaded BLAS, temp dirs in the work dir, bytecode cache."""
    tmp = workdir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **SINGLE_THREAD_ENV, "TMPDIR": str(tmp), "DASK_TEMPORARY_DIRECTORY": str(tmp),
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    if not cold_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(workdir / "pycache")
    return env


IMPORTS_PROBE = ("import forecasting.orchestration.local, forecasting.training.batch, "
                 "forecasting.models.statsforecast_models, statsforecast.models, distributed")


def import_seconds(env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", IMPORTS_PROBE], env=env, check=True, cwd=PROJECT_ROOT)
    return time.perf_counter() - started


def run_phase(spec: dict[str, Any], workdir: Path, label: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one measurement in a child process of this script, sampling its memory."""
    spec_path = workdir / f"{label}.spec.json"
    result_path = workdir / f"{label}.result.json"
    spec = {**spec, "result": str(result_path)}
    spec_path.write_text(json.dumps(spec))
    env = env if env is not None else child_env(workdir, cold_bytecode=True)
    import resource

    def tree_cpu() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    cpu_before, busy_before = tree_cpu(), busy_core_seconds()
    load_before = os.getloadavg()
    started = time.perf_counter()
    # its own process group, so that an interrupted benchmark takes the whole tree down with it
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--phase", str(spec_path)], env=env,
                            start_new_session=True)
    try:
        with TreeSampler(proc.pid) as sampler:
            code = proc.wait()
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    process_wall = time.perf_counter() - started
    own_cpu, busy = tree_cpu() - cpu_before, busy_core_seconds() - busy_before
    if code != 0 or not result_path.exists():
        raise RuntimeError(f"phase {label} failed with exit code {code}")
    result = json.loads(result_path.read_text())
    result.update(
        label=label,
        process_wall_seconds=process_wall,
        peak_rss_total=sampler.peak_rss_total,
        peak_pss_total=sampler.peak_pss_total,
        peak_rss_main=sampler.peak_rss_by_pid.get(proc.pid, 0),
        memory_samples=sampler.n_samples,
        process_cpu_seconds=own_cpu,
        load_average_before=load_before,  # 1, 5, 15 minutes, as uptime prints them
        load_average_after=os.getloadavg(),
        # core-seconds other programs used while this phase ran (this script's own tree excluded)
        foreign_core_seconds=max(0.0, busy - own_cpu),
        foreign_cores=max(0.0, busy - own_cpu) / process_wall,
    )
    workers = [pid for pid in result.get("worker_pids", []) if pid in sampler.peak_rss_by_pid]
    if workers:
        result["peak_rss_per_worker"] = {str(pid): sampler.peak_rss_by_pid[pid] for pid in workers}
        result["peak_rss_worker_max"] = max(sampler.peak_rss_by_pid[pid] for pid in workers)
    others = {pid: rss for pid, rss in sampler.peak_rss_by_pid.items() if pid != proc.pid and pid not in workers}
    result["peak_rss_other_children"] = {sampler.names.get(pid, str(pid)): rss for pid, rss in others.items()}
    return result


# --------------------------------------------------------------------------------------
# the measured phases (each in its own child process)
# --------------------------------------------------------------------------------------
def phase_platform(spec: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    from forecasting.config import load_settings
    from forecasting.orchestration import executors
    from forecasting.orchestration.local import run_weekly

    overrides: dict[str, Any] = {
        "data": {"path": spec["panel"]},
        "output": {"root": spec["output_root"]},
        "compute": {"progress": False, "executor": "dask"},
    }
    if spec.get("candidates"):
        overrides["models"] = {"candidates": [{"name": name} for name in spec["candidates"]]}
    settings = load_settings(overrides=overrides)
    cpu_started = cpu_seconds()
    started = time.perf_counter()
    summary = run_weekly(settings)
    wall = time.perf_counter() - started
    worker_pids: list[int] = []
    cluster = executors._embedded_cluster  # the run's embedded cluster, still up
    if cluster is not None:
        from distributed import Client

        with Client(cluster, set_as_default=False) as client:
            worker_pids = sorted(client.run(os.getpid).values())
    executors.shutdown_embedded_cluster()  # joins (reaps) the worker processes: their CPU time counts now
    cpu = cpu_seconds() - cpu_started

    run_dir = Path(summary["run_dir"])
    ledger = pd.read_parquet(run_dir / "ledger.parquet")
    lifecycle = pd.read_parquet(run_dir / "input" / "lifecycle.parquet", columns=["unique_id", "lifecycle", "n_obs"])
    # every raw forecast (series x candidate x origin, the future included) of every batch
    raw_keys = [pd.read_parquet(path, columns=["unique_id", "candidate", "step"])
                for path in sorted((run_dir / "shards").glob("shard-*/batches/batch-*/raw.parquet"))]
    raw = pd.concat(raw_keys, ignore_index=True) if raw_keys else pd.DataFrame(columns=["unique_id", "candidate", "step"])
    forecasts = raw[raw["step"] == 1]
    failures = ledger["failures"].fillna("").astype(str)
    backtest_failures = int(sum(f.count(" cutoff ") for f in failures))
    fits = len(forecasts)
    return {
        "side": "platform",
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "timings_seconds": summary.get("timings_seconds", {}),
        "n_series": int(len(ledger)),
        "n_backtested": int(forecasts["unique_id"].nunique()),
        "lifecycle_counts": {str(k): int(v) for k, v in lifecycle["lifecycle"].value_counts().items()},
        "status_counts": summary.get("counts", {}),
        "winner_mix": summary.get("winner_mix", {}),
        "fits": int(fits),
        "backtest_failures": backtest_failures,
        "fits_incl_conformal": int(fits),  # calibration needs no refits
        "fits_by_candidate": {str(k): int(v) for k, v in forecasts["candidate"].value_counts().items()},
        "n_workers": len(worker_pids),
        "worker_pids": worker_pids,
        "run_dir": str(run_dir),
        "n_batches": int(sum(1 for _ in (run_dir / "shards").glob("shard-*/batches/batch-*"))),
    }


def _sf_models(names: list[str]) -> list[Any]:
    import statsforecast.models as sfm
    from statsforecast.utils import ConformalIntervals

    models = []
    for name in names:
        info = SF_MODELS[name]
        extra = {} if info["native"] else {"prediction_intervals": ConformalIntervals(h=HORIZON, n_windows=CONFORMAL_WINDOWS)}
        models.append(getattr(sfm, name)(**info["params"], **extra))
    return models


def phase_bare(spec: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd
    from statsforecast import StatsForecast

    n_jobs = int(spec["n_jobs"])
    groups: list[dict[str, Any]] = spec["groups"]  # [{"ids": [...], "models": [...]}, ...]
    cpu_started = cpu_seconds()
    started = time.perf_counter()
    panel = pd.read_parquet(spec["panel"])
    fits = fits_conformal = n_series = 0
    rows = {"cv": 0, "forecast": 0}
    for group in groups:
        df = panel[panel["unique_id"].isin(set(group["ids"]))]
        if df.empty:
            continue
        sf = StatsForecast(models=_sf_models(group["models"]), freq=FREQ, n_jobs=n_jobs)
        cv = sf.cross_validation(df=df, h=HORIZON, n_windows=N_WINDOWS, step_size=HORIZON, level=[LEVEL])
        fc = sf.forecast(df=df, h=HORIZON, level=[LEVEL])
        rows["cv"] += len(cv)
        rows["forecast"] += len(fc)
        k = df["unique_id"].nunique()
        n_series += k
        per_model = k * (N_WINDOWS + 1)
        fits += per_model * len(group["models"])
        fits_conformal += sum(per_model * (1 if SF_MODELS[m]["native"] else 1 + CONFORMAL_WINDOWS)
                              for m in group["models"])
    wall = time.perf_counter() - started
    return {
        "side": "bare",
        "wall_seconds": wall,
        "cpu_seconds": cpu_seconds() - cpu_started,  # the pool's processes are joined by now
        "n_series": n_series,
        "n_backtested": n_series,
        "fits": fits,
        "fits_incl_conformal": fits_conformal,
        "rows": rows,
        "n_jobs": n_jobs,
        "groups": [{"n_series": len(g["ids"]), "models": g["models"]} for g in groups],
    }


def phase_breakdown(spec: dict[str, Any]) -> dict[str, Any]:
    """Single process, one core, no Dask, no files: bare n_jobs=1 against the platform's train_batch."""
    import functools

    import pandas as pd
    from statsforecast import StatsForecast

    import forecasting.training.batch as batch_module
    import forecasting.training.selection_step as selection_module
    from forecasting.config import load_settings
    from forecasting.evaluation.procedure import ENSEMBLE
    from forecasting.models.statsforecast_models import StatsForecastModel
    from forecasting.training.plan import TrainingPlan
    from forecasting.training.selection_step import train_batch

    panel = pd.read_parquet(spec["panel"])
    ids = sorted(panel["unique_id"].unique())[: int(spec["k"])]
    df = panel[panel["unique_id"].isin(set(ids))].sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    smooth_models = [name for name, info in SF_MODELS.items() if "smooth" in info["demand"]]
    settings = load_settings(overrides={"compute": {"progress": False, "executor": "serial"}})
    plan = TrainingPlan.from_settings(settings)
    lifecycle = pd.DataFrame({"unique_id": ids, "lifecycle": "smooth", "demand_class": "smooth"})

    # warm both paths on one series (first-call costs), then measure
    one = df[df["unique_id"] == ids[0]]
    StatsForecast(models=_sf_models(smooth_models), freq=FREQ, n_jobs=1).forecast(df=one, h=HORIZON, level=[LEVEL])
    train_batch(one.reset_index(drop=True), lifecycle.iloc[:1], plan, FREQ)

    sf = StatsForecast(models=_sf_models(smooth_models), freq=FREQ, n_jobs=1)
    started = time.perf_counter()
    sf.cross_validation(df=df, h=HORIZON, n_windows=N_WINDOWS, step_size=HORIZON, level=[LEVEL])
    bare_cv = time.perf_counter() - started
    started = time.perf_counter()
    sf.forecast(df=df, h=HORIZON, level=[LEVEL])
    bare_forecast = time.perf_counter() - started

    # inclusive timers around the platform's steps (wrapped only in this child process)
    clock: dict[str, float] = {}
    calls: dict[str, int] = {}

    def timed(name: str, fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                clock[name] = clock.get(name, 0.0) + time.perf_counter() - t
                calls[name] = calls.get(name, 0) + 1
        return wrapper

    for module, names in ((selection_module, ("backtest_batch", "select_shard")), (batch_module, ("candidate_forecasts",))):
        for name in names:
            setattr(module, name, timed(name, getattr(module, name)))
    original_fit, original_predict = StatsForecastModel._fit, StatsForecastModel._predict
    StatsForecastModel._fit = timed("model._fit (statsforecast)", original_fit)
    StatsForecastModel._predict = timed("model._predict (statsforecast)", original_predict)
    started = time.perf_counter()
    result = train_batch(df, lifecycle, plan, FREQ)
    platform_total = time.perf_counter() - started
    StatsForecastModel._fit, StatsForecastModel._predict = original_fit, original_predict

    models = result.ledger["model"].fillna("").astype(str)
    return {
        "side": "breakdown",
        "k": len(ids),
        "bare_models": smooth_models,
        "bare_cv_seconds": bare_cv,
        "bare_forecast_seconds": bare_forecast,
        "bare_fits": len(ids) * len(smooth_models) * (N_WINDOWS + 1),
        "platform_seconds": platform_total,
        "platform_clock": clock,
        "platform_calls": calls,
        "platform_backtest_fits": int((result.scores["candidate"] != ENSEMBLE).sum()),
        "ensemble_winners": int((models == ENSEMBLE).sum()),
        "winner_mix": {str(k): int(v) for k, v in models.value_counts().items()},
    }


def child_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    import warnings

    warnings.filterwarnings("ignore")
    phases = {"platform": phase_platform, "bare": phase_bare, "breakdown": phase_breakdown}
    result = phases[spec["kind"]](spec)
    Path(spec["result"]).write_text(json.dumps(result, default=str))


# --------------------------------------------------------------------------------------
# the parent: panels, phases, tables
# --------------------------------------------------------------------------------------
def mib(value: float) -> str:
    return f"{value / 2**20:,.0f}"


def write_panels(n_series: int, workdir: Path) -> dict[str, Any]:
    from forecasting.data.demo import generate_demo_panel

    workdir.mkdir(parents=True, exist_ok=True)
    panel, kinds = generate_demo_panel(n_series=n_series, n_periods=N_PERIODS, return_kinds=True)
    full = workdir / f"panel-{n_series}.parquet"
    panel.to_parquet(full, index=False)
    keep = set(kinds.loc[kinds["kind"].isin(["smooth", "seasonal"]), "unique_id"])
    smooth_panel = panel[panel["unique_id"].isin(keep)]
    smooth = workdir / f"panel-{n_series}-smooth.parquet"
    smooth_panel.to_parquet(smooth, index=False)
    lengths = panel.groupby("unique_id").size()
    return {
        "full": str(full),
        "smooth": str(smooth),
        "kinds": {str(k): int(v) for k, v in kinds["kind"].value_counts().items()},
        "n_smooth": len(keep),
        "lengths": lengths,
    }


def bare_groups(lifecycle_path: Path, lengths: Any, routed: bool) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The series bare statsforecast gets: what the platform backtests, long enough for bare."""
    import pandas as pd

    lifecycle = pd.read_parquet(lifecycle_path, columns=["unique_id", "lifecycle"])
    modelled = lifecycle[lifecycle["lifecycle"].isin(["smooth", "intermittent"])]
    long_enough = modelled[modelled["unique_id"].map(lengths).fillna(0) >= BARE_MIN_LENGTH]
    excluded = {"platform_backtested": len(modelled), "too_short_for_bare": len(modelled) - len(long_enough)}
    if not routed:
        return [{"ids": long_enough["unique_id"].tolist(), "models": list(SF_MODELS)}], excluded
    groups = []
    for demand in ("smooth", "intermittent"):
        ids = long_enough.loc[long_enough["lifecycle"] == demand, "unique_id"].tolist()
        models = [name for name, info in SF_MODELS.items() if demand in info["demand"]]
        groups.append({"ids": ids, "models": models})
    return groups, excluded


def describe(result: dict[str, Any]) -> dict[str, Any]:
    wall = result["wall_seconds"]
    return {
        "wall": wall,
        "series_per_s": result["n_series"] / wall,
        "fits_per_s": result["fits"] / wall,
        "fits_conf_per_s": result["fits_incl_conformal"] / wall,
        "cpu": result["cpu_seconds"],
        "cpu_ms_per_fit": 1000 * result["cpu_seconds"] / max(1, result["fits"]),
    }


def print_comparison(title: str, rows: list[dict[str, Any]], notes: list[str]) -> None:
    print(f"\n=== {title} ===")
    header = (f"{'run':<24} {'wall s':>7} {'series':>6} {'backt.':>6} {'series/s':>8} {'fits':>7} {'fits/s':>7} "
              f"{'fits+conf':>9} {'f+c/s':>6} {'CPU s':>7} {'CPU ms/fit':>10} {'peak RSS MiB':>12} {'peak PSS MiB':>12} "
              f"{'other load':>10}")
    print(header)
    print("-" * len(header))
    for r in rows:
        d = describe(r)
        print(f"{r['label']:<24} {d['wall']:>7.1f} {r['n_series']:>6} {r['n_backtested']:>6} {d['series_per_s']:>8.2f} "
              f"{r['fits']:>7} {d['fits_per_s']:>7.1f} {r['fits_incl_conformal']:>9} {d['fits_conf_per_s']:>6.1f} "
              f"{d['cpu']:>7.1f} {d['cpu_ms_per_fit']:>10.1f} {mib(r['peak_rss_total']):>12} "
              f"{mib(r['peak_pss_total']):>12} {r['foreign_cores']:>7.2f} cr")
    platform = rows[0]
    for bare in rows[1:]:
        p, b = describe(platform), describe(bare)
        print(f"ratio platform / {bare['label']}: wall {p['wall'] / b['wall']:.2f}, "
              f"seconds per fit {(p['wall'] / platform['fits']) / (b['wall'] / bare['fits']):.2f}, "
              f"seconds per fit incl. conformal "
              f"{(p['wall'] / platform['fits_incl_conformal']) / (b['wall'] / bare['fits_incl_conformal']):.2f}, "
              f"CPU {p['cpu'] / b['cpu']:.2f}, CPU per fit {p['cpu_ms_per_fit'] / b['cpu_ms_per_fit']:.2f}, "
              f"peak RSS {platform['peak_rss_total'] / bare['peak_rss_total']:.2f}, "
              f"peak PSS {platform['peak_pss_total'] / bare['peak_pss_total']:.2f}")
    t = platform.get("timings_seconds", {})
    if t:
        print("platform phases (s): " + ", ".join(f"{k} {v:.1f}" for k, v in t.items())
              + f"; {platform['n_batches']} batches on {platform['n_workers']} workers")
    print(f"platform lifecycle: {platform['lifecycle_counts']}; status: {platform['status_counts']}")
    print(f"platform raw forecasts (series x candidate x origin): {platform['fits']}; "
          f"failed origins {platform['backtest_failures']}; per candidate {platform['fits_by_candidate']}")
    print(f"platform winner mix: {platform['winner_mix']}")
    for r in rows:
        print(f"load average (1, 5, 15 min) before / after {r['label']}: "
              f"{', '.join(f'{v:.2f}' for v in r['load_average_before'])} / "
              f"{', '.join(f'{v:.2f}' for v in r['load_average_after'])}")
    for note in notes:
        print(f"note: {note}")


def comparison(name: str, panel: str, lengths: Any, args: argparse.Namespace, workdir: Path,
               cores: int) -> dict[str, Any]:
    label = name.replace(" ", "-")
    platform = run_phase({"kind": "platform", "panel": panel, "output_root": str(workdir / f"out-{label}")},
                         workdir, f"{label}-platform", args.env)
    platform["label"] = "platform (dask)"
    rows = [platform]
    excluded: dict[str, int] = {}
    if not args.skip_bare:
        lifecycle = Path(platform["run_dir"]) / "input" / "lifecycle.parquet"
        for routed in {"both": (False, True), "all": (False,), "routed": (True,)}[args.bare]:
            groups, excluded = bare_groups(lifecycle, lengths, routed)
            tag = "routed" if routed else "all"
            bare = run_phase({"kind": "bare", "panel": panel, "n_jobs": cores, "groups": groups},
                             workdir, f"{label}-bare-{tag}", args.env)
            bare["label"] = "bare sf, routed models" if routed else "bare sf, all 11 models"
            rows.append(bare)
    notes = [
        f"platform series = every input series (ledger rows incl. new/ended); 'backt.' = series it backtested; "
        f"bare gets the platform's backtested series with >= {BARE_MIN_LENGTH} points "
        f"({excluded.get('too_short_for_bare', 0)} of {excluded.get('platform_backtested', 0)} too short for bare "
        "cross_validation with conformal intervals)" if excluded else "bare skipped",
        "wall = the work inside a fresh process (platform: run_weekly incl. reading the input, cluster start, "
        "finalize, registry, publish, report; bare: read the Parquet file, cross_validation + forecast incl. its "
        "process pool)",
        "peak RSS sums every process of the tree; bare statsforecast forks its pool, so shared pages count twice "
        "in RSS (PSS splits them); Dask workers are spawned (no sharing)",
        "intervals: the platform gives quantiles 0.1/0.5/0.9, every candidate's raw forecast calibrated by "
        "split-conformal on the pool's backtest residuals (no refits); bare gives level 80 natively and via "
        "ConformalIntervals(h=13, n_windows=2) (2 refits per fit) for the models without native intervals",
        f"windows: both sides {N_WINDOWS} of 13 weeks where the history allows; the platform fits Auto* once at the "
        "earliest cutoff and moves it forward (a refit where the moved forecast explodes), bare refits every model "
        "at every cutoff",
        "platform extras that bare does not do: validation, lifecycle, calibration, the pooled ensemble, "
        "forward-only selection and its out-of-sample estimate, the quality gate, per-fit time limits, "
        "per-batch Parquet checkpoints, ledger, registry, publishing and the report",
        "CPU s = user + system time of the measured work and every process it started (platform: incl. the Dask "
        "workers' start-up and imports; bare: its pool); it does not depend on other load the way wall time does. "
        "'other load' = cores used by other programs on average while the phase ran (0 = a quiet machine)",
        f"the history cap of expensive models ({SEASON * 4} points = 4 seasons) does not bind on {N_PERIODS}-week "
        "series: both sides fit Auto* on the full history",
    ]
    print_comparison(f"{name}: {platform['n_series']} input series, {cores} cores", rows, notes)
    return {"rows": rows, "excluded": excluded}


def scaling(args: argparse.Namespace, workdir: Path, cores: int) -> list[dict[str, Any]]:
    candidates = [c.strip() for c in args.scaling_candidates.split(",") if c.strip()]
    results = []
    for size in args.sizes:
        panels = write_panels(size, workdir)
        result = run_phase({"kind": "platform", "panel": panels["full"], "output_root": str(workdir / f"out-scale-{size}"),
                            "candidates": candidates}, workdir, f"scale-{size}", args.env)
        results.append(result)
    print(f"\n=== scaling: platform only, candidates {','.join(candidates) or 'default'}, {cores} cores ===")
    header = (f"{'series':>7} {'wall s':>8} {'series/s':>9} {'fits':>7} {'fits/s':>8} {'batches':>8} "
              f"{'CPU s':>7} {'peak RSS total MiB':>19} {'main MiB':>9} {'max worker MiB':>15} {'per worker MiB':>16} "
              f"{'other load':>10}")
    print(header)
    print("-" * len(header))
    for r in results:
        per_worker = "/".join(mib(v) for v in r.get("peak_rss_per_worker", {}).values())
        print(f"{r['n_series']:>7} {r['wall_seconds']:>8.1f} {r['n_series'] / r['wall_seconds']:>9.2f} {r['fits']:>7} "
              f"{r['fits'] / r['wall_seconds']:>8.1f} {r['n_batches']:>8} {r['cpu_seconds']:>7.1f} "
              f"{mib(r['peak_rss_total']):>19} {mib(r['peak_rss_main']):>9} {mib(r.get('peak_rss_worker_max', 0)):>15} "
              f"{per_worker:>16} {r['foreign_cores']:>7.2f} cr")
    for r in results:
        print(f"load average (1, 5, 15 min) before / after {r['n_series']} series: "
              f"{', '.join(f'{v:.2f}' for v in r['load_average_before'])} / "
              f"{', '.join(f'{v:.2f}' for v in r['load_average_after'])}")
    print("note: 'main' = the process that calls run_weekly (prepare, finalize, publish hold the whole panel "
          "there); workers hold one batch at a time")
    return results


def breakdown(args: argparse.Namespace, panel: str, workdir: Path) -> dict[str, Any]:
    r = run_phase({"kind": "breakdown", "panel": panel, "k": args.breakdown}, workdir, "breakdown", args.env)
    bare = r["bare_cv_seconds"] + r["bare_forecast_seconds"]
    c, n = r["platform_clock"], r["platform_calls"]
    model = c.get("model._fit (statsforecast)", 0.0) + c.get("model._predict (statsforecast)", 0.0)
    total = r["platform_seconds"]
    print(f"\n=== breakdown: {r['k']} smooth series, one process, one core, no Dask, no files ===")
    print(f"bare statsforecast n_jobs=1, {len(r['bare_models'])} models: cross_validation {r['bare_cv_seconds']:.2f} s "
          f"+ forecast {r['bare_forecast_seconds']:.2f} s = {bare:.2f} s ({r['bare_fits']} fits)")
    print(f"platform train_batch, default settings: {total:.2f} s  (ratio {total / bare:.2f}); "
          f"{r['platform_backtest_fits']} scored backtest forecasts, {r['ensemble_winners']} ensemble winners")
    rows = [
        ("statsforecast fit+predict inside the platform", model, n.get("model._fit (statsforecast)", 0)),
        ("backtest_batch (raw forecasts, every origin)", c.get("backtest_batch", 0.0), n.get("backtest_batch", 0)),
        ("  candidate_forecasts (one candidate, one series)", c.get("candidate_forecasts", 0.0),
         n.get("candidate_forecasts", 0)),
        ("select_shard (calibration, ensemble, selection, gate)", c.get("select_shard", 0.0), n.get("select_shard", 0)),
        ("rest of train_batch", total - c.get("backtest_batch", 0.0) - c.get("select_shard", 0.0), 0),
    ]
    for name, seconds, calls in rows:
        print(f"  {name:<50} {seconds:>8.2f} s {100 * seconds / total:>5.1f} %  calls {calls}")
    print(f"  wrapper overhead = candidate_forecasts - statsforecast = "
          f"{c.get('candidate_forecasts', 0.0) - model:.2f} s per {n.get('candidate_forecasts', 0)} calls")
    return r


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=2000, help="series in the comparison panel (default 2000)")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",") if x], default=[1000, 10000],
                        help="panel sizes of the scaling table (default 1000,10000)")
    parser.add_argument("--skip-bare", action="store_true", help="no bare statsforecast runs")
    parser.add_argument("--bare", choices=("both", "all", "routed"), default="both",
                        help="which bare runs: every model on every series, the platform's routing, or both")
    parser.add_argument("--skip-scaling", action="store_true", help="no scaling table")
    parser.add_argument("--skip-smooth", action="store_true",
                        help="no second comparison on the smooth + seasonal kinds of the panel")
    parser.add_argument("--scaling-candidates", default=DEFAULT_SCALING_CANDIDATES,
                        help="candidates of the scaling table, comma-separated (default: the default candidates)")
    parser.add_argument("--output-json", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--workdir", type=Path, help="keep panels and run folders here (default: a temp dir)")
    parser.add_argument("--cold-bytecode", action="store_true",
                        help="measure with the environment's own bytecode setting (here: no .pyc, every process compiles)")
    parser.add_argument("--breakdown", type=int, default=0, metavar="K",
                        help="also split the platform's per-series cost on K smooth series, in one process")
    parser.add_argument("--phase", help=argparse.SUPPRESS)  # internal: run one measurement
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.phase:
        child_main(args.phase)
        return 0
    cores = os.cpu_count() or 1

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds through run_phase, which kills the measured tree

    signal.signal(signal.SIGTERM, terminate)
    with tempfile.TemporaryDirectory(prefix="throughput-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        report: dict[str, Any] = {"cores": cores, "series": args.series, "n_periods": N_PERIODS}
        started = time.perf_counter()
        panels = write_panels(args.series, workdir)
        report["kinds"] = panels["kinds"]
        print(f"panel: generate_demo_panel(n_series={args.series}, n_periods={N_PERIODS}); kinds {panels['kinds']}")
        args.env = child_env(workdir, args.cold_bytecode)
        if not args.cold_bytecode:  # fill the bytecode cache with an unmeasured tiny run of every phase kind
            warm = write_panels(12, workdir / "warmup")
            run_phase({"kind": "platform", "panel": warm["full"], "output_root": str(workdir / "warmup" / "out")},
                      workdir, "warmup-platform", args.env)
            run_phase({"kind": "bare", "panel": warm["full"], "n_jobs": cores,
                       "groups": [{"ids": [str(i) for i, n in warm["lengths"].items() if n >= BARE_MIN_LENGTH],
                                   "models": list(SF_MODELS)}]}, workdir, "warmup-bare", args.env)
        cold = child_env(workdir, cold_bytecode=True)
        report["import_seconds"] = {"as_is": import_seconds(cold), "bytecode_cached": import_seconds(child_env(workdir, False))}
        print(f"import probe (fresh process: forecasting + statsforecast + distributed): "
              f"{report['import_seconds']['as_is']:.1f} s as the environment is (PYTHONDONTWRITEBYTECODE="
              f"{os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}), {report['import_seconds']['bytecode_cached']:.1f} s "
              f"with a bytecode cache; measuring {'as is' if args.cold_bytecode else 'with the bytecode cache'}")
        if args.breakdown:
            report["breakdown"] = breakdown(args, panels["smooth"], workdir)
        report["mixed"] = comparison("demo mix", panels["full"], panels["lengths"], args, workdir, cores)
        if not args.skip_smooth:
            report["smooth"] = comparison("smooth+seasonal kinds only", panels["smooth"], panels["lengths"], args,
                                          workdir, cores)
        if not args.skip_scaling:
            report["scaling"] = scaling(args, workdir, cores)
        report["total_seconds"] = time.perf_counter() - started
        print(f"\ntotal benchmark time {report['total_seconds']:.0f} s")
        if args.output_json:
            args.output_json.parent.mkdir(parents=True, exist_ok=True)
            args.output_json.write_text(json.dumps(report, indent=2, default=str))
            print(f"figures written to {args.output_json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
