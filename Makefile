# Two entry points do all the set-up on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench venv clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The tested torch release, CPU build (installed first so nothing pulls a CUDA build).
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)

# Main job: the GUI on the embedded synthetic scene once a display exists; headless, the terminal stream.
run: $(STAMP)
	$(BIN)/eventstereo run

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/eventstereo bench sbt
	$(BIN)/eventstereo bench synthetic

clean:
	rm -rf $(VENV) build *.egg-info
