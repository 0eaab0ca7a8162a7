# flchain — the two commands that matter: `make demo` and `make test`. Both run the idempotent setup first.
.PHONY: setup test test-unit demo contracts gas bench lint fuzz clean

VENV := .venv/bin

setup:
	./scripts/setup.sh

# One BLAS/OpenMP thread per process: the suite runs chain, IPFS and several services side by side on 2 cores.
test: setup
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 $(VENV)/python -m pytest -q -p no:cacheprovider tests

test-unit: setup
	$(VENV)/python -m pytest -q tests/unit

demo: setup
	$(VENV)/flchain demo

contracts: setup
	$(VENV)/flchain contracts build

gas: setup
	$(VENV)/python scripts/gas_report.py

bench: setup
	$(VENV)/flchain bench all --quick
	$(VENV)/python scripts/bench_codec.py

# Coverage-guided fuzzing of the update codec (atheris); `make test` runs a 30 s slice of it.
FUZZ_SECONDS ?= 600
fuzz: setup
	PYTHONPATH=$(CURDIR) $(VENV)/python -m tests.fuzz.run_fuzz --seconds $(FUZZ_SECONDS) --work .fuzz

lint: setup
	$(VENV)/ruff check flchain trainer aggregator validator backend bench tests scripts
	$(VENV)/mypy --strict flchain trainer aggregator validator backend bench
	./scripts/slither.sh

clean:
	rm -rf .venv .venv-slither node_modules .pytest_cache .fuzz
