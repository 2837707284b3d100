# The two set-up commands: `make demo` and `make test`. Both create .venv and install everything
# pinned (torch==2.13.0 CPU first, so that nothing pulls CUDA wheels).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/data/beir/scifact
COLLECTION ?= collections/scifact
PYTEST_ARGS ?=

.PHONY: install demo test lint bench-quality bench-speed bench-encode bench-compression bench-filtered bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[all]"
	touch $@

demo: install
	@test -d "$(DATA)" || { echo "BEIR SciFact not found at $(DATA): put the dataset there or run 'make demo DATA=/path/to/scifact'" >&2; exit 1; }
	$(VENV)/bin/tiervec index "$(DATA)" --collection $(COLLECTION)
	$(VENV)/bin/tiervec info $(COLLECTION)
	$(VENV)/bin/tiervec search $(COLLECTION) "Vitamin D deficiency increases the risk of multiple sclerosis" -k 5
	$(VENV)/bin/tiervec search $(COLLECTION) "Antibiotic resistance spreads through horizontal gene transfer" -k 5
	$(VENV)/bin/tiervec search $(COLLECTION) "Exercise improves insulin sensitivity in type 2 diabetes" -k 5
	$(VENV)/bin/tiervec eval "$(DATA)" --collection $(COLLECTION) --json $(COLLECTION)-eval.json

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(PY) -m ruff check src tests bench
	$(PY) -m mypy src

bench-quality: install
	$(PY) bench/quality.py

bench-speed: install
	$(PY) bench/speed.py

bench-encode: install
	$(PY) bench/encode.py

bench-compression: install
	$(PY) bench/compression.py

bench-filtered: install
	$(PY) bench/filtered.py

bench: bench-quality bench-speed bench-encode bench-compression bench-filtered

clean:
	rm -rf $(VENV) collections bench/.cache
