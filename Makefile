# CALM Studio: `make run` starts the app with demo data; `make test` runs every check.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/calm_studio
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
export PY

.PHONY: run test setup lint format test-sqlite test-postgres bench clean

run: setup
	@scripts/ensure-redis.sh
	$(PY) manage.py migrate --noinput
	$(PY) manage.py demo_setup
	$(PY) manage.py devstack

test: setup
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

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: setup
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

test-sqlite: setup
	REDIS_URL=$(TEST_REDIS_URL) DATABASE_URL= $(PY) -m pytest $(PYTEST_ARGS)

test-postgres: setup
	REDIS_URL=$(TEST_REDIS_URL) DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var/test_* var/uploads
