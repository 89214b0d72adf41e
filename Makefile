# Two commands matter: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: install demo test lint typecheck unit bench bench-wire docs clean promtool services apt install-check

# pip at -qq: errors only. At -q setuptools' notes on the editable build (not ours to act on)
# and the host's pip configuration warnings filled the first screen a new user sees.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --quiet -e '.[dev]'
	touch $(STAMP) $(NATIVE)

# The compiled helpers (advertisex/native/*.c) are built by the install above;
# a change to their sources compiles them again (the editable install builds them in place).
# The extension is optional, so pip only warns when it fails to compile and keeps the last
# library built: where there is a C compiler, a library older than its sources stops here.
NATIVE = $(VENV)/.native
NATIVE_SOURCES = $(wildcard advertisex/native/*.[ch])
$(NATIVE): $(NATIVE_SOURCES) $(STAMP)
	$(BIN)/python -m pip install --quiet --quiet --no-deps -e .
	@if command -v cc >/dev/null 2>&1; then for source in $(NATIVE_SOURCES); do \
	  [ "$$(ls -t advertisex/native/_native*.so $$source 2>/dev/null | head -1)" != "$$source" ] || \
	  { echo "the compiled helpers did not build from $$source: run" \
	    "'$(BIN)/python -m pip install --no-deps -e . -v' to see the compiler's error"; exit 1; }; \
	done; fi
	touch $(NATIVE)

# Bytecode for the package's own modules, as `pip install` of a wheel leaves it: where
# PYTHONDONTWRITEBYTECODE is set (this project's CI machines) every command, its forkserver
# and its workers compiled them from source again (≈ 0.1 s of CPU each, every start).
install: $(STAMP) $(NATIVE)
	$(BIN)/python -m compileall -q advertisex

demo: install
	$(BIN)/advertisex demo

lint: install
	$(BIN)/ruff check advertisex tests bench
	$(BIN)/ruff format --check advertisex tests bench
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

# The test pyramid (docs/testing.md), both on PYTEST_WORKERS cores (pytest-xdist):
#   make unit   the fast layer: no Spark, no JVM, no servers, no big generated data (≤ 2 min)
#   make test   lint + types + every test and every module's doctests (≤ 10 min on a fresh
#               clone, install included); the Spark tests are one group on one worker (one JVM)
PYTEST_WORKERS ?= 2
PYTEST = $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadgroup

unit: install
	$(PYTEST) -m "not slow and not spark"

# promtool (Debian's prometheus package, ~20 s) lets the tests check deploy/prometheus/.
# Best effort: without root or apt the rules test is skipped, never failed.
promtool:
	@command -v promtool >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; }; }; } || \
	  echo "promtool not available: the Prometheus rules check will be skipped"

# Java (PySpark's JVM), PostgreSQL (the shared-catalog tests start their own server) and
# chromium with chromium-driver (the console's browser tests) come from Debian when
# missing; CI runs as root on a clean machine.
APT_INSTALL = DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends
services:
	@command -v java >/dev/null 2>&1 || $(MAKE) --no-print-directory apt PACKAGES=openjdk-17-jre-headless
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || $(MAKE) --no-print-directory apt PACKAGES=postgresql
	@[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || \
	  $(MAKE) --no-print-directory apt PACKAGES="chromium chromium-driver"

apt:
	@[ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || \
	  { echo "need root and apt-get to install $(PACKAGES); their tests will be skipped"; exit 0; }; \
	  $(APT_INSTALL) $(PACKAGES) >/dev/null 2>&1 || \
	  { apt-get update -qq >/dev/null 2>&1 && $(APT_INSTALL) $(PACKAGES) >/dev/null; }

# The type check runs beside the tests (one core, ≈ 16 s): the two test workers leave a
# third of the machine idle waiting on servers, JVMs and subprocesses. Its output follows
# the tests'; either failing fails `make test`.
test: lint promtool services
	@$(BIN)/mypy > $(VENV)/typecheck.log 2>&1 & typecheck=$$!; \
	  $(PYTEST) --durations=25; tests=$$?; \
	  wait $$typecheck; types=$$?; cat $(VENV)/typecheck.log; \
	  [ $$tests = 0 ] && [ $$types = 0 ]

# `pip install .` without extras into a clean venv, resolved from the package index (network),
# then ingest → process → query on the reference samples. `make test` runs the offline variant.
install-check: install
	ADVERTISEX_INSTALL_FROM_INDEX=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_install.py

docs: install
	$(BIN)/python -m advertisex.model.reasons > docs/reasons.md
	$(BIN)/python -m advertisex.config > docs/configuration.md

bench: install
	$(BIN)/python bench/process.py

# Pixel and click redirect under wrk (Debian's wrk package) beside a bare ASGI responder.
bench-wire: install
	@command -v wrk >/dev/null 2>&1 || $(MAKE) --no-print-directory apt PACKAGES=wrk
	$(BIN)/python bench/wire.py

clean:
	rm -rf $(VENV) advertisex-data .pytest_cache .mypy_cache .ruff_cache
