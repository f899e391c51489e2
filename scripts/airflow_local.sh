#!/usr/bin/env bash
# `make airflow` / `make airflow-stop`: Airflow (api-server, scheduler, dag-processor, triggerer, as
# `airflow standalone` runs them) with the project's DAGs, plus a local Dask scheduler and two workers
# the tasks use. Everything listens on 127.0.0.1 only: the components are started one by one because
# standalone's scheduler and triggerer start log servers on every interface (0.0.0.0:8793/8794); with
# the LocalExecutor on one machine the UI reads task logs from the log folder, so they are not started.
# Each service runs in its own process group (setsid); stop sends TERM, then KILL, to each group.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/.venv/bin
export PATH=$BIN:$PATH   # standalone starts its components as `airflow ...`
export AIRFLOW_HOME=${AIRFLOW_HOME:-$ROOT/airflow_home}
STATE=$AIRFLOW_HOME/pids
AIRFLOW_PORT=${AIRFLOW_PORT:-8080}
DASK_PORT=${DASK_PORT:-8786}
DASK_DASHBOARD_PORT=${DASK_DASHBOARD_PORT:-8787}
DASK_WORKERS=${DASK_WORKERS:-2}

export AIRFLOW__CORE__DAGS_FOLDER=$ROOT/dags
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM=${AIRFLOW__CORE__PARALLELISM:-4}   # 2 cores: a few task processes
export AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG=${AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG:-4}
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT=$AIRFLOW_PORT
export AIRFLOW__API__BASE_URL=http://127.0.0.1:$AIRFLOW_PORT
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://127.0.0.1:$AIRFLOW_PORT/execution/
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
export AIRFLOW__CORE__AUTH_MANAGER=airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager
export AIRFLOW__API__WORKERS=${AIRFLOW__API__WORKERS:-1}
# The environment a run without the config param uses: staging (its own output root, forecast
# table, MLflow experiment and model), so nothing here touches what `make demo` wrote. Relative
# paths in a config are relative to this folder (every Airflow process runs from it).
export FORECASTING_CONFIG=${FORECASTING_CONFIG:-$ROOT/config/staging.yaml}
# Locally nothing is scheduled: a DAG runs when triggered, never on unpausing; so DAGs start unpaused.
export FORECASTING_WEEKLY_SCHEDULE=${FORECASTING_WEEKLY_SCHEDULE:-none}
export FORECASTING_RETRAIN_SCHEDULE=${FORECASTING_RETRAIN_SCHEDULE:-none}
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-False}
export FORECASTING__COMPUTE__EXECUTOR=dask
export FORECASTING__COMPUTE__SCHEDULER_ADDRESS=tcp://127.0.0.1:$DASK_PORT
export FORECASTING__COMPUTE__PROGRESS=false
export MLFLOW_DISABLE_TELEMETRY=true
export DASK_TEMPORARY_DIRECTORY=$AIRFLOW_HOME/dask-tmp

spawn() {  # name command...: start in a new session, remember its process group
  local name=$1; shift
  setsid "$@" >"$AIRFLOW_HOME/logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$STATE/$name.pid"
}

wait_for() {  # seconds description command...
  local seconds=$1 what=$2; shift 2
  for _ in $(seq "$seconds"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "$what did not come up in ${seconds}s; see $AIRFLOW_HOME/logs" >&2
  return 1
}

start() {
  if compgen -G "$STATE/*.pid" >/dev/null; then
    echo "already started (pids in $STATE); run make airflow-stop first" >&2
    exit 1
  fi
  mkdir -p "$STATE" "$AIRFLOW_HOME/logs" "$DASK_TEMPORARY_DIRECTORY"
  spawn dask-scheduler "$BIN/dask" scheduler --host 127.0.0.1 --port "$DASK_PORT" --dashboard-address "127.0.0.1:$DASK_DASHBOARD_PORT"
  wait_for 60 "the Dask scheduler" "$BIN/python" -c "import socket; socket.create_connection(('127.0.0.1', $DASK_PORT), 1)"
  for i in $(seq "$DASK_WORKERS"); do
    spawn "dask-worker-$i" "$BIN/dask" worker "tcp://127.0.0.1:$DASK_PORT" --host 127.0.0.1 --nthreads 1 \
      --nworkers 1 --memory-limit 4GiB --name "worker-$i" --dashboard-address 127.0.0.1:0
  done
  "$BIN/airflow" db migrate >"$AIRFLOW_HOME/logs/db-migrate.log" 2>&1
  spawn airflow-scheduler "$BIN/airflow" scheduler --skip-serve-logs
  spawn airflow-triggerer "$BIN/airflow" triggerer --skip-serve-logs
  spawn airflow-dag-processor "$BIN/airflow" dag-processor
  spawn airflow-api-server "$BIN/airflow" api-server --host 127.0.0.1 --port "$AIRFLOW_PORT"
  wait_for 180 "Airflow"  "$BIN/python" -c \
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health', timeout=2)"
  local passwords=$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated
  wait_for 30 "the login file" test -s "$passwords"
  echo "Airflow UI:     http://127.0.0.1:$AIRFLOW_PORT  (login: $(sed -e 's/[{}" ]//g' -e 's/:/ \/ /' "$passwords"))"
  echo "Dask dashboard: http://127.0.0.1:$DASK_DASHBOARD_PORT/status  (scheduler tcp://127.0.0.1:$DASK_PORT, $DASK_WORKERS workers)"
  echo "Logs: $AIRFLOW_HOME/logs   Settings: $FORECASTING_CONFIG   Stop: make airflow-stop"
  echo "Nothing is scheduled. Run the weekly job: make airflow-trigger CONFIG=config/staging.yaml"
  echo "  (or in the UI: weekly_forecast -> Trigger, param config)"
}

trigger() {  # [config]: trigger weekly_forecast once with that settings file (default: FORECASTING_CONFIG)
  local config=${1:-$FORECASTING_CONFIG}
  [ -f "$config" ] || { echo "no settings file $config" >&2; exit 2; }
  config=$(cd "$(dirname "$config")" && pwd)/$(basename "$config")
  local log=$AIRFLOW_HOME/logs/trigger.log
  # a run triggered on a paused DAG waits until it is unpaused
  if ! PYTHONWARNINGS=ignore "$BIN/airflow" dags unpause weekly_forecast >"$log" 2>&1 ||
     ! PYTHONWARNINGS=ignore "$BIN/airflow" dags trigger weekly_forecast --conf "{\"config\": \"$config\"}" \
       --output json >>"$log" 2>&1; then
    cat "$log" >&2
    exit 1
  fi
  local run_id
  run_id=$(grep -o '"dag_run_id": "[^"]*"' "$log" | tail -1 | cut -d'"' -f4)
  echo "triggered weekly_forecast run $run_id with config $config"
  echo "Follow it: http://127.0.0.1:$AIRFLOW_PORT/dags/weekly_forecast (Grid; train_shard's Mapped Tasks: one per shard)"
}

stop() {
  shopt -s nullglob
  local pidfiles=("$STATE"/*.pid)
  [ ${#pidfiles[@]} -eq 0 ] && { echo "nothing to stop"; return 0; }
  for file in "${pidfiles[@]}"; do kill -TERM -- "-$(cat "$file")" 2>/dev/null || true; done
  for _ in $(seq 20); do
    local alive=0
    for file in "${pidfiles[@]}"; do kill -0 -- "-$(cat "$file")" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 1
  done
  for file in "${pidfiles[@]}"; do kill -KILL -- "-$(cat "$file")" 2>/dev/null || true; rm -f "$file"; done
  echo "stopped Airflow and the Dask cluster"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  trigger) trigger "${2:-}" ;;
  *) echo "usage: $0 start|stop|trigger [CONFIG]" >&2; exit 2 ;;
esac
