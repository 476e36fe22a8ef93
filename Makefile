# deepcuts: `make demo` installs everything and runs the main job; `make test` installs and tests.
# Every install goes through constraints.txt (torch stays the 2.13.0 CPU build).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEEPCUTS := $(VENV)/bin/deepcuts
DEMO ?= demo

# implicit and numpy bring their own threads; the MiniLM model is inside its package.
export OPENBLAS_NUM_THREADS := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo test lint bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The main job: a simulated world (Monday 2026-10-05 to 2026-11-01), ingested, a model
# trained, every listener's Discover Weekly for the week after, one list with its reasons,
# the snapshot that `deepcuts serve` serves published, and one listener's home screen of
# shelves chosen by the bandit from it.
demo: install
	$(DEEPCUTS) simulate --users 2000 --tracks 4000 --weeks 4 --seed 7 --out $(DEMO)/world
	$(DEEPCUTS) --store $(DEMO)/deepcuts.duckdb ingest native $(DEMO)/world
	$(DEEPCUTS) --store $(DEMO)/deepcuts.duckdb stats
	$(DEEPCUTS) --store $(DEMO)/deepcuts.duckdb train
	$(DEEPCUTS) --store $(DEMO)/deepcuts.duckdb weekly --week 2026-W45
	$(DEEPCUTS) --store $(DEMO)/deepcuts.duckdb weekly --week 2026-W45 --user u00001 --format m3u8
	$(DEEPCUTS) --store $(DEMO)/deepcuts.duckdb publish
	$(DEEPCUTS) --store $(DEMO)/deepcuts.duckdb home --user u00001
	@echo
	@echo "Serve it:  $(DEEPCUTS) --store $(DEMO)/deepcuts.duckdb serve --no-auth"
	@echo "then open  http://127.0.0.1:8000/  (the listener page: pick u00001),"
	@echo "           http://127.0.0.1:8000/admin  (the operator page) and http://127.0.0.1:8000/docs (the API)"

test: install
	$(VENV)/bin/pytest -q

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

bench: install
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	$(PY) benchmarks/bench_ingest.py

clean:
	rm -rf $(DEMO) .pytest_cache .hypothesis
