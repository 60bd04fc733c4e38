# Two entry points: `make demo` (a search on the embedded digits data) and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow test-fast wheel-check lint clean device

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "codesign needs Python 3.11, and $(PY) is not on PATH: install it (apt install python3.11, or pyenv install 3.11) or run make PY=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet "setuptools>=68"
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The measured search on the embedded digits data: it needs no latency model (whose first build
# takes minutes) and no accuracy predictor, and fits 10 minutes with the install on 2 cores, one
# of them busy. --epochs 12 trains the supernet for 1.5 minutes here, --quality-samples 0 skips
# the supernet's quality report (a minute of diagnostics), --no-references skips the maximal
# network's references (float32 and int8, fine-tuned: 1.5 minutes here); the time budget is a
# safety net (a search stopped by it still finishes a front of 3 points).
demo: $(STAMP)
	$(BIN)/codesign search --data digits --trials 30 --epochs 12 --quality-samples 0 \
		--no-references --time-budget-min 3 --out runs/demo

# The stand-in board for the remote-device tests: sshd, and an account with tflite-runtime 2.14;
# Debian's Chromium for the report test; PostgreSQL for the multi-worker tests.
device:
	bash tools/setup_device.sh
	bash tools/setup_browser.sh
	bash tools/setup_postgres.sh

test: $(STAMP) device
	$(BIN)/ruff check codesign tests tools examples
	$(BIN)/python -m pytest -q -ra -m "not slow and not long" --durations=15

# Whole searches at default settings (minutes each).
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -ra -m "slow and not long" --durations=10

# Acceptance runs CI's hour has no room for: 20 minutes or more each, and the default space at
# default settings (7 minutes; CI's make demo runs that space at shorter settings).
test-long: $(STAMP)
	$(BIN)/python -m pytest -q -ra -m long --durations=10

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not long and not e2e"

# The wheel in a fresh venv: the shipped profiles, device script and tables come with it.
wheel-check: $(STAMP)
	bash tools/check_wheel.sh

lint: $(STAMP)
	$(BIN)/ruff check codesign tests tools examples

clean:
	rm -rf $(VENV) runs .pytest_cache build dist
