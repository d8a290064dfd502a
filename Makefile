# The two quick-start commands:  make demo  (run bgpwatch)   make test  (every test)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint bench clean

setup:
	@.ci/setup

demo: setup
	$(BIN)/bgpwatch demo

test: setup
	$(BIN)/pytest -q -ra -n 2 --dist loadfile --durations=25 -m "not solo"
	$(BIN)/pytest -q -ra -m solo

lint: setup
	$(BIN)/ruff check bgpwatch tests bench
	$(BIN)/ruff format --check bgpwatch tests bench

bench: setup
	$(BIN)/python -m bench.pipeline

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
