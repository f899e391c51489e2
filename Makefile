# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3.11
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export MLFLOW_DISABLE_TELEMETRY := true
# Precompile bytecode at install: where PYTHONDONTWRITEBYTECODE is set, every process (each Dask
# worker, each plug-in child) would otherwise recompile the whole stack at import (about 4x slower).
export UV_COMPILE_BYTECODE := 1

.PHONY: setup demo test lint clean airflow airflow-trigger airflow-stop mlflow-ui

$(UV):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is needed on PATH as $(PYTHON) (or: make PYTHON=/path/to/python3.11 ...)" >&2; exit 1; }
	@echo "installing uv $(UV_VERSION) into $(TOOLS)/ ..."
	@$(PYTHON) -m pip install --quiet --quiet --disable-pip-version-check --no-warn-script-location \
		--root-user-action=ignore --target $(TOOLS) uv==$(UV_VERSION)

$(BIN)/forecasting: $(UV) pyproject.toml uv.lock
	@echo "creating .venv from uv.lock (about 20 s the first time; packages listed in .tools/install.log) ..."
	@$(UV) sync --frozen --python $(PYTHON) > $(TOOLS)/install.log 2>&1 || { cat $(TOOLS)/install.log >&2; exit 1; }
	@touch $@

# Plug-ins: every plugins/*/ folder with a pyproject.toml, except the template.
#
# How they coexist with the lock file: uv.lock pins the platform and its dependencies only, and
# `uv sync --frozen` makes .venv exactly that, uninstalling anything else, plug-ins included. So
# the plug-ins are installed after the sync, editable (a change to a plug-in's code needs no
# reinstall), with the locked versions as constraints: a plug-in can never move a locked package;
# a dependency the lock does not have is installed at the newest version its pyproject allows (pin
# it there). The plug-ins are reinstalled whenever the environment is re-synced, a plug-in's
# pyproject.toml changes, or a plug-in folder is added or removed (the re-sync uninstalls a removed
# one). uv.lock is never re-locked for a plug-in; a plug-in that needs a locked package at another
# version needs a platform change (edit pyproject.toml, `uv lock`), like any other dependency change.
PLUGIN_DIRS := $(sort $(patsubst %/pyproject.toml,%,$(filter-out plugins/_template/pyproject.toml,$(wildcard plugins/*/pyproject.toml))))
PLUGIN_SET := $(VENV)/.plugin-set
PLUGINS_INSTALLED := $(VENV)/.plugins-installed

# Rewritten only when the set of plug-in folders changes, so that only a change reinstalls them.
$(PLUGIN_SET): FORCE
	@mkdir -p $(VENV)
	@echo "$(PLUGIN_DIRS)" | cmp -s - $@ || echo "$(PLUGIN_DIRS)" > $@

$(PLUGINS_INSTALLED): $(BIN)/forecasting $(PLUGIN_SET) $(addsuffix /pyproject.toml,$(PLUGIN_DIRS))
	@echo "installing the plug-ins: $(notdir $(PLUGIN_DIRS)) ..."
	@$(UV) sync --frozen --python $(PYTHON) --quiet
	@$(UV) export --frozen --no-hashes --no-emit-project --no-header --quiet -o $(VENV)/constraints.txt
	@$(if $(PLUGIN_DIRS),$(UV) pip install --quiet --python $(BIN)/python --constraint $(VENV)/constraints.txt $(addprefix -e ,$(PLUGIN_DIRS)))
	@touch $@

FORCE:

setup: $(BIN)/forecasting $(PLUGINS_INSTALLED)  ## the environment from the lock file, then every plug-in

demo: setup  ## run the weekly job on the built-in demo panel
	$(BIN)/forecasting run --config config/demo.yaml

mlflow-ui: setup  ## browse the embedded MLflow store that `make demo` fills
	$(BIN)/mlflow ui --backend-store-uri sqlite:///output/mlflow/mlflow.db --host 127.0.0.1 --port 5000

test: setup  ## run the test suite
	$(BIN)/python -m pytest

lint: setup  ## ruff and the layer contracts
	$(BIN)/ruff check .
	$(BIN)/lint-imports

airflow: setup  ## Airflow (UI on 127.0.0.1:8080) with the DAGs, plus a local Dask scheduler and 2 workers
	scripts/airflow_local.sh start

airflow-trigger: setup  ## run weekly_forecast once under `make airflow`: make airflow-trigger CONFIG=config/staging.yaml
	scripts/airflow_local.sh trigger $(CONFIG)

airflow-stop:  ## stop everything `make airflow` started
	scripts/airflow_local.sh stop

clean:
	rm -rf $(VENV) $(TOOLS) output .pytest_cache .ruff_cache
