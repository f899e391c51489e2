# Two commands do all the set-up: `make demo` and `make test`.
PYTHON ?= python3.11
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: setup demo test lint clean

$(UV):
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target $(TOOLS) uv==$(UV_VERSION)

$(BIN)/forecasting: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

setup: $(BIN)/forecasting  ## create the environment from the lock file

demo: setup  ## run the weekly job on the built-in demo panel
	$(BIN)/forecasting run --config config/default.yaml

test: setup  ## run the test suite
	$(BIN)/python -m pytest

lint: setup  ## ruff and the layer contracts
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) $(TOOLS) output .pytest_cache .ruff_cache
