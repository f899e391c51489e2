"""Orchestration at scale: what a run costs per series when the models cost almost nothing.

A synthetic weekly panel of cheap series (``--sizes``, default 10,000 and 100,000; two
years each) is written in parts of 50,000 series, never held in one frame by this
script (``--parts``: the platform reads that folder part by part; otherwise one file combined
from the parts), and run through the platform end to end (``run_weekly``: prepare, train on the
embedded Dask cluster with 2 workers, finalize with the registry, publish, report) with
the cheap candidates only (Naive and SeasonalNaive, computed with array operations). What
is left is the platform's own work per series: reading and validating, scheduling,
checkpoints, calibration and selection, the ledger, the tables, the registry and the
report.

Per size it prints the wall time of each step and its cost per series, the CPU time,
the peak memory of the main process (it holds the embedded scheduler and every step but
training), overall and within each step, and of each worker, the number of shards (Airflow mapped tasks), Dask tasks and
batches, and the growth exponent of each step between the smallest and the largest size
(1.0 = linear; above about 1.15 the step grows faster than the panel). Each size runs in
a fresh child process whose process tree is sampled every 0.2 s; the load average is
printed before and after.

Usage::

    .venv/bin/python benchmarks/orchestration_scale.py [--sizes 10000,100000] [--workdir DIR] [--parts]
    .venv/bin/python benchmarks/orchestration_scale.py --sizes "" --simulate 1000000 --simulate-fixed 100000

``--simulate N`` schedules the task graph a run of N cheap series would have (shards,
global tasks, batches with the batch size from the candidates' cost, completions; ``--simulate-fixed``
with the earlier fixed 5 series per batch) on the same kind of cluster, with no work in the tasks: the
scheduler's own cost per task and its memory, apart from the work.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = Path(__file__).resolve().parent
for path in (PROJECT_ROOT, BENCHMARKS):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from throughput import PeriodicSampler, TreeSampler, child_env, mib  # noqa: E402  (a sibling script)

N_PERIODS = 104
PART_SERIES = 50_000
CANDIDATES = ("Naive", "SeasonalNaive")
STEPS = ("prepare", "train", "finalize", "publish", "report")


def write_panel(n_series: int, folder: Path, seed: int = 0) -> list[Path]:
    """Parquet parts of ``PART_SERIES`` series each: level x yearly season x Poisson noise."""
    import numpy as np
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    dates = pd.date_range(end="2025-12-28", periods=N_PERIODS, freq="W-SUN")
    season = 1.0 + 0.3 * np.sin(2 * np.pi * np.arange(N_PERIODS) / 52.0)
    parts = []
    for part, start in enumerate(range(0, n_series, PART_SERIES)):
        count = min(PART_SERIES, n_series - start)
        levels = rng.gamma(2.0, 20.0, size=count)
        y = rng.poisson(levels[:, None] * season[None, :]).astype("float64")
        ids = np.repeat([f"S{start + i:07d}" for i in range(count)], N_PERIODS)
        frame = pd.DataFrame({"unique_id": ids, "ds": np.tile(dates.values, count), "y": y.ravel()})
        path = folder / f"part-{part:04d}.parquet"
        frame.to_parquet(path, index=False)
        parts.append(path)
    return parts


def combine_parts(parts: list[Path], target: Path) -> Path:
    """One Parquet file from the parts, row group by row group (the platform reads one path)."""
    import pyarrow.parquet as pq

    schema = pq.read_schema(parts[0])
    with pq.ParquetWriter(target, schema) as writer:
        for part in parts:
            writer.write_table(pq.read_table(part))
    return target


class OwnMemory(PeriodicSampler):
    """Samples this process's RSS every ``interval`` seconds (perf_counter time, bytes)."""

    def __init__(self, interval: float = 0.05) -> None:
        import psutil

        super().__init__(interval)
        self._process = psutil.Process()
        self.samples: list[tuple[float, int]] = []

    def sample(self) -> bool:
        self.samples.append((time.perf_counter(), self._process.memory_info().rss))
        return True

    def peak_by_step(self, started: float, timings: dict[str, float]) -> dict[str, int]:
        """Peak RSS within each step; run_weekly's steps follow one another from ``started``."""
        peaks, begin = {}, started
        for step in STEPS:
            end = begin + timings.get(step, 0.0)
            peaks[step] = max((rss for t, rss in self.samples if begin <= t <= end), default=0)
            begin = end
        return peaks


def phase(spec: dict[str, Any]) -> dict[str, Any]:
    """In the measured child: the run, and what it left in its folder."""
    import pandas as pd

    from forecasting.config import load_settings
    from forecasting.orchestration import executors
    from forecasting.orchestration.local import run_weekly

    settings = load_settings(overrides={
        "data": {"path": spec["panel"]},
        "output": {"root": spec["output_root"]},
        "models": {"candidates": [{"name": n} for n in CANDIDATES], "fallback": ["Naive"]},
        "compute": {"progress": False, "executor": "dask", "n_workers": 2},
    })
    with OwnMemory() as memory:
        started = time.perf_counter()
        summary = run_weekly(settings)
        wall = time.perf_counter() - started
    worker_pids: list[int] = []
    cluster = executors._embedded_cluster
    scheduler_tasks = 0
    if cluster is not None:
        from distributed import Client

        with Client(cluster, set_as_default=False) as client:
            worker_pids = sorted(client.run(os.getpid).values())
            scheduler_tasks = int(client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.task_prefixes)))
    executors.shutdown_embedded_cluster()
    run_dir = Path(summary["run_dir"])
    shards = sorted((run_dir / "shards").glob("shard-*"))
    batches = sum(1 for _ in (run_dir / "shards").glob("shard-*/batches/batch-*"))
    ledger = pd.read_parquet(run_dir / "ledger.parquet", columns=["status"])
    return {
        "wall_seconds": wall,
        "timings_seconds": summary.get("timings_seconds", {}),
        "peak_rss_main_by_step": memory.peak_by_step(started, summary.get("timings_seconds", {})),
        "n_series": int(len(ledger)),
        "status_counts": {str(k): int(v) for k, v in ledger["status"].value_counts().items()},
        "n_shards": len(shards),
        "n_batches": batches,
        "n_dask_tasks": batches + 2 * len(shards),  # one per batch; per shard its global step and its completion
        "scheduler_task_prefixes": scheduler_tasks,
        "worker_pids": worker_pids,
        "run_bytes": sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file()),
    }


def run_size(n_series: int, workdir: Path, in_parts: bool = False) -> dict[str, Any]:
    parts = write_panel(n_series, workdir / f"parts-{n_series}")
    if in_parts:  # the platform reads the folder part by part
        panel = workdir / f"parts-{n_series}"
    else:
        panel = combine_parts(parts, workdir / f"panel-{n_series}.parquet")
        shutil.rmtree(workdir / f"parts-{n_series}")
    spec_path, result_path = workdir / f"spec-{n_series}.json", workdir / f"result-{n_series}.json"
    spec_path.write_text(json.dumps({"panel": str(panel), "output_root": str(workdir / f"out-{n_series}"),
                                     "result": str(result_path)}))
    load_before = os.getloadavg()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--phase", str(spec_path)], env=child_env(workdir, False),
                            start_new_session=True)
    with TreeSampler(proc.pid) as sampler:
        code = proc.wait()
    if code != 0:
        raise RuntimeError(f"the run of {n_series} series failed with exit code {code}")
    result = json.loads(result_path.read_text())
    result.update(
        process_wall_seconds=time.perf_counter() - started,
        peak_rss_main=sampler.peak_rss_by_pid.get(proc.pid, 0),
        peak_rss_workers=[sampler.peak_rss_by_pid.get(pid, 0) for pid in result["worker_pids"]],
        load_before=load_before, load_after=os.getloadavg(),
        panel_bytes=sum(p.stat().st_size for p in parts) if in_parts else panel.stat().st_size,
        input="folder of parts" if in_parts else "one file",
    )
    shutil.rmtree(workdir / f"out-{n_series}", ignore_errors=True)
    if in_parts:
        shutil.rmtree(panel)
    else:
        panel.unlink()
    return result


def print_tables(results: list[dict[str, Any]]) -> None:
    print(f"\n=== orchestration at scale: candidates {', '.join(CANDIDATES)}, {N_PERIODS} weeks, 2 workers, "
          f"input {results[0].get('input', 'one file') if results else ''} ===")
    header = (f"{'series':>9} {'wall s':>8} " + " ".join(f"{s + ' s':>11}" for s in STEPS)
              + f" {'shards':>7} {'Dask tasks':>10} {'main MiB':>9} {'workers MiB':>13} {'run MB':>8}")
    print(header)
    print("-" * len(header))
    for r in results:
        t = r["timings_seconds"]
        print(f"{r['n_series']:>9,} {r['wall_seconds']:>8.1f} " + " ".join(f"{t.get(s, 0.0):>11.1f}" for s in STEPS)
              + f" {r['n_shards']:>7} {r['n_dask_tasks']:>10,} {mib(r['peak_rss_main']):>9} "
              f"{'/'.join(mib(v) for v in r['peak_rss_workers']):>13} {r['run_bytes'] / 1e6:>8.0f}")
    print("\nmain process peak memory within each step (MiB; the embedded scheduler lives there too):")
    for r in results:
        steps = r.get("peak_rss_main_by_step", {})
        print(f"  {r['n_series']:>9,}: " + ", ".join(f"{s} {mib(steps.get(s, 0))}" for s in STEPS))
    print("\nper series (ms):")
    for r in results:
        t = r["timings_seconds"]
        per = " ".join(f"{s} {1e3 * t.get(s, 0.0) / r['n_series']:.2f}" for s in STEPS)
        print(f"  {r['n_series']:>9,}: total {1e3 * r['wall_seconds'] / r['n_series']:.2f}; {per}")
    if len(results) >= 2:
        small, large = results[0], results[-1]
        ratio = large["n_series"] / small["n_series"]
        print(f"\ngrowth exponent {small['n_series']:,} -> {large['n_series']:,} series (1.0 = linear):")
        for step in (*STEPS, "wall"):
            a = small["wall_seconds"] if step == "wall" else small["timings_seconds"].get(step, 0.0)
            b = large["wall_seconds"] if step == "wall" else large["timings_seconds"].get(step, 0.0)
            if a > 0 and b > 0:
                print(f"  {step:>9}: {math.log(b / a) / math.log(ratio):.2f}")
        growth = large["peak_rss_main"] / max(small["peak_rss_main"], 1)
        print(f"  main process memory x{growth:.1f} for x{ratio:.0f} series; "
              f"worker peak {mib(max(small['peak_rss_workers'] or [0]))} -> {mib(max(large['peak_rss_workers'] or [0]))} MiB")
    for r in results:
        print(f"load average before / after {r['n_series']:,} series: "
              f"{', '.join(f'{v:.2f}' for v in r['load_before'])} / {', '.join(f'{v:.2f}' for v in r['load_after'])}")


def _noop_task(shard: int, batch: int, n_series: int) -> dict[str, int]:
    """What a batch task returns to the client; the work itself is left out."""
    return {"shard": shard, "batch": batch, "n_series": n_series}


def simulate_scheduling(n_series: int, series_per_batch: int | None) -> dict[str, Any]:
    """The run's Dask task graph for ``n_series`` cheap series, without the work: scheduler cost and memory.

    The layout is the platform's own (``Settings.shard_count``, ``orchestration.batching``);
    the tasks have the shape ``executors.shard_tasks`` gives them (per shard a global task, its
    batches after it, its completion after them) and run through the platform's own
    ``DaskBackend`` on an embedded LocalCluster with 2 single-threaded workers. The scheduler
    lives in this process, so its memory is this process's peak RSS growth.
    """
    import psutil
    from distributed import Client, LocalCluster

    from forecasting.config import load_settings
    from forecasting.orchestration.batching import series_per_batch as batch_size
    from forecasting.orchestration.executors import DaskBackend, Task
    from forecasting.training.plan import TrainingPlan

    settings = load_settings(overrides={"models": {"candidates": [{"name": n} for n in CANDIDATES]},
                                        "compute": {"series_per_batch": series_per_batch, "progress": False}})
    n_shards = settings.shard_count(n_series)
    per_shard = -(-n_series // n_shards)
    size = batch_size(TrainingPlan.from_settings(settings), per_shard, settings.compute.series_per_batch)
    batches_per_shard = -(-per_shard // size)
    tasks = []
    for shard in range(n_shards):
        first = Task(f"global-{shard}", _noop_task, (shard, -1, 0))
        steps = [Task(f"batch-{shard}-{b}", _noop_task, (shard, b, size), (first.key,)) for b in range(batches_per_shard)]
        tasks += [first, *steps, Task(f"complete-{shard}", _noop_task, (shard, -2, 0), tuple(t.key for t in steps))]
    process = psutil.Process()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        rss_before = process.memory_info().rss
        peak = [rss_before]
        finished = [0]

        def sample(task: Any, result: dict[str, int]) -> None:
            finished[0] += 1
            if finished[0] % 2000 == 0:
                peak[0] = max(peak[0], process.memory_info().rss)

        started = time.perf_counter()
        DaskBackend(client).run(tasks, sample)
        wall = time.perf_counter() - started
        peak[0] = max(peak[0], process.memory_info().rss)
    n_tasks = len(tasks)
    return {"n_series": n_series, "n_shards": n_shards, "series_per_batch": size, "n_tasks": n_tasks,
            "wall_seconds": wall, "ms_per_task": 1e3 * wall / n_tasks, "ms_per_series": 1e3 * wall / n_series,
            "scheduler_rss_growth": peak[0] - rss_before}


def print_simulation(rows: list[dict[str, Any]]) -> None:
    print("\n=== scheduling only (no work), embedded LocalCluster, 2 workers ===")
    header = (f"{'series':>10} {'shards':>7} {'per batch':>10} {'Dask tasks':>11} {'wall s':>8} {'ms/task':>8} "
              f"{'ms/series':>10} {'scheduler +MiB':>15}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['n_series']:>10,} {r['n_shards']:>7} {r['series_per_batch']:>10} {r['n_tasks']:>11,} "
              f"{r['wall_seconds']:>8.1f} {r['ms_per_task']:>8.2f} {r['ms_per_series']:>10.3f} "
              f"{mib(r['scheduler_rss_growth']):>15}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the results here too")
    parser.add_argument("--simulate", default="", help="series counts whose task graph is scheduled without work, "
                        "e.g. 1000000 (batches sized from the candidates' cost)")
    parser.add_argument("--simulate-fixed", default="", help="the same with 5 series per batch (the earlier fixed size)")
    parser.add_argument("--parts", action="store_true",
                        help=f"give the platform the folder of parts ({PART_SERIES:,} series each), not one combined file")
    parser.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        import warnings

        warnings.filterwarnings("ignore")
        spec = json.loads(Path(args.phase).read_text())
        Path(spec["result"]).write_text(json.dumps(phase(spec), default=str))
        return 0
    if args.simulate:
        load_before = os.getloadavg()
        rows = [simulate_scheduling(int(n), None) for n in args.simulate.split(",")]
        rows += [simulate_scheduling(int(n), 5) for n in args.simulate_fixed.split(",") if n]
        print_simulation(rows)
        print(f"load average before / after: {', '.join(f'{v:.2f}' for v in load_before)} / "
              f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}")
        if not args.sizes:
            return 0
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="orchestration-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for size in (int(s) for s in args.sizes.split(",") if s):
        print(f"[{time.strftime('%H:%M:%S')}] {size:,} series ...", flush=True)
        results.append(run_size(size, workdir, args.parts))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str))
    print_tables(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
