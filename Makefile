# The two commands of the README: `make demo` (set up + run the demo) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup test smoke demo bench clean-venv

# The exact tested versions (constraints.txt) on top of pyproject.toml's ranges: fast and
# reproducible here, as in CI. The workflow (Snakemake 9) needs Python >= 3.11; the library
# alone installs on 3.10 (pip install .).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "the workflow needs Python >= 3.11 (Snakemake 9)"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

setup: $(VENV)/.installed  ## create .venv and install augloss with its test extras

test: setup  ## run the test suite
	$(PY) -m pytest -q -n 2 --dist loadfile  # 2 workers, a test file each (module fixtures once)

smoke: setup  ## the paper-shaped smoke run: config.yaml's DAG and real models, synthetic data
	$(PY) -m pytest -q -m smoke tests/test_paper_smoke.py

demo: setup  ## run the demo experiment end to end (results/demo/)
	$(PY) -m snakemake --cores 2 --configfile demo/config.yaml

bench: setup  ## the benchmark suite (results/bench/report.{json,md})
	$(PY) -m benchmarks

clean-venv:
	rm -rf $(VENV)
