# healthstream: `make run` starts the whole stack, `make test` runs the suite.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: install run test fuzz bench lint deploy-check browser screenshots clean

install: $(VENV)/.installed infra/kafka/lib/.complete

$(VENV)/.installed: pyproject.toml ingest/pglite/package-lock.json
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	cd ingest/pglite && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Apache Kafka's runtime classpath from Maven Central (infra/kafka/pom.xml), copied once
# into infra/kafka/lib; offline afterwards (see docs/platform.md).
infra/kafka/lib/.complete: infra/kafka/pom.xml | $(VENV)/.installed
	$(PY) -c "from config.services import install_kafka; install_kafka()"

# Debian's Chromium drives the dashboard tests (no browser download is possible here).
# Under CI=true a browser that cannot be installed fails the run: CI never passes by
# skipping the browser tests.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || { if [ "$$CI" = "true" ]; then echo "chromium could not be installed (CI=true): failing"; exit 1; fi; \
	       echo "chromium could not be installed: the browser tests will say so"; }; }

# Refresh the dashboard screenshots in docs/screenshots (the tests alone write to a temp folder).
screenshots: install browser
	HEALTHSTREAM_SCREENSHOTS=docs/screenshots $(PY) -m pytest tests/dashboard -q

# DEBUG=1: a local run over plain HTTP with the built-in key (config/settings.py); with
# DEBUG off a SECRET_KEY is required and HTTPS, HSTS and Secure cookies are on.
run: install
	DEBUG=$${DEBUG:-1} $(PY) manage.py run_stack

test: install browser
	$(PY) -m pytest $(PYTEST_ARGS)


# The randomized schemathesis run (not derandomized): FUZZ_EXAMPLES (200) examples per
# operation, as a clinician and as a patient, on seeded data; 0 server errors and a 2xx for
# every operation. Status counts per operation go to var/fuzz-report.txt. CI keeps the
# derandomized set (tests/api/test_schema.py) in make test.
fuzz: install
	FUZZ_EXAMPLES=$${FUZZ_EXAMPLES:-200} $(PY) -m pytest tests/api/fuzz_schema.py -q -s -p no:cacheprovider

# Production settings (DEBUG off: no query logging) over plain HTTP, with a throwaway key.
bench: install
	HTTPS=0 SECRET_KEY=$${SECRET_KEY:-bench-$$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')} \
	  $(PY) -m bench.ingest --json

# The layers (lib <- care <- alerts <- ingest <- streams | forecasting <- coaching <- api)
# are held by import-linter (pyproject.toml); mypy checks the lower layers and the pure numerics.
MYPY_PATHS := lib care alerts streams/detectors forecasting/forecasters forecasting/features.py \
	forecasting/backtest.py ingest/nights.py

lint: install
	$(VENV)/bin/ruff check .
	PYTHONPATH=. $(VENV)/bin/lint-imports
	$(VENV)/bin/mypy $(MYPY_PATHS)
	$(MAKE) --no-print-directory deploy-check

# Django's deployment checks with production settings (DEBUG off, a random 50+ character key).
deploy-check:
	SECRET_KEY=$$(od -An -N40 -tx1 /dev/urandom | tr -d ' \n') DEBUG=0 ALLOWED_HOSTS=health.example.org \
	  $(PY) manage.py check --deploy --fail-level WARNING

clean:
	rm -rf var .pytest_cache
