# Two commands: `make run` (set up + start the dashboard) and `make test` (whole suite).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SHARED ?= $(abspath ../shared)
export AAS_TEST_MODELS_DIR ?= $(SHARED)/models
export AAS_TEST_DATA ?= $(SHARED)/data
PORT ?= 8501
# Weights: models/ when it holds any, else the shared dev folder next to the checkout.
export AAS_MODELS_DIR ?= $(shell if ls models/*.onnx models/*.pt >/dev/null 2>&1 || [ ! -d $(SHARED)/models ]; then echo models; else echo $(SHARED)/models; fi)

.PHONY: run test install bench clean-venv

$(STAMP): requirements.txt pyproject.toml scripts/fix_opencv.sh
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	bash scripts/fix_opencv.sh $(BIN)/python
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/aas init
	$(BIN)/aas models list || true
	# The scheduler runs the timetable beside the dashboard (no broker: in this process); it stops with it.
	$(BIN)/aas scheduler & S=$$!; trap "kill $$S 2>/dev/null" EXIT INT TERM; \
	  $(BIN)/streamlit run app.py --server.port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/aas --models-dir $(AAS_TEST_MODELS_DIR) bench

clean-venv:
	rm -rf $(VENV)
