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

demo: $(STAMP)
	$(BIN)/codesign search --data digits --trials 30 --out runs/demo

# The stand-in board for the remote-device tests: sshd, and an account with tflite-runtime 2.14.
device:
	bash tools/setup_device.sh

test: $(STAMP) device
	$(BIN)/ruff check codesign tests tools
	$(BIN)/python -m pytest -q -ra --durations=15

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check codesign tests tools

clean:
	rm -rf $(VENV) runs .pytest_cache
