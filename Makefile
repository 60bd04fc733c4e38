# Two entry points: `make demo` (a search on the embedded digits data) and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint clean device

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet "setuptools>=68"
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The predictor-driven joint search won tools/bench_search.py at a fixed budget, so the demo runs
# it: the profile's latency model (measured once per machine, cached), then 6 minutes of search.
demo: $(STAMP)
	$(BIN)/codesign profile build xnnpack-1t
	$(BIN)/codesign search --data digits --accuracy hybrid --predictor-float-samples 500 \
		--predictor-quant-samples 40 --quality-samples 0 --time-budget-min 6 --trials 1000 \
		--out runs/demo

# The stand-in board for the remote-device tests: sshd, and an account with tflite-runtime 2.14;
# Debian's Chromium for the report test.
device:
	bash tools/setup_device.sh
	bash tools/setup_browser.sh
	bash tools/setup_postgres.sh

test: $(STAMP) device
	$(BIN)/ruff check codesign tests tools examples
	$(BIN)/python -m pytest -q -ra --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check codesign tests tools examples

clean:
	rm -rf $(VENV) runs .pytest_cache
