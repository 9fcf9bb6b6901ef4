# Two entry points a new user needs: `make run` and `make test`. Both create .venv on first use.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8501
SCENARIO ?= scenarios/deepseek-v2-paper.yaml

.PHONY: run test bench lint report clean engine-flags

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch==2.13.0 first: it is the CPU wheel on disk; everything else then resolves against it.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

report: $(STAMP)
	$(BIN)/planner report $(SCENARIO)

run: $(STAMP)
	$(BIN)/planner report $(SCENARIO)
	$(BIN)/planner simulate train $(SCENARIO)
	# every bundled scenario's simulations cached on disk, so each page draws at once (about a minute here)
	$(BIN)/python -m dashboard.data $(SCENARIO) $(filter-out $(SCENARIO),$(wildcard scenarios/*.yaml))
	@echo "dashboard: http://localhost:$(PORT)"
	$(BIN)/streamlit run dashboard/app.py --server.headless true --server.address 127.0.0.1 \
		--server.port $(PORT) --browser.gatherUsageStats false

# The browser test drives Debian's Chromium (playwright's own download cannot reach its host here).
CHROMIUM := $(shell command -v chromium 2>/dev/null)

test: $(STAMP)
ifeq ($(CHROMIUM),)
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
endif
	$(BIN)/python -m pytest --durations=10

bench: $(STAMP)
	@for b in $(wildcard benchmarks/*.py); do echo "== $$b"; $(BIN)/python $$b || exit 1; done

# The engines' recorded flags (costmodel/app/launch/flags/), read again from their PyPI wheels in .engines/
engine-flags: $(STAMP)
	$(BIN)/python scripts/engine_flags.py

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
