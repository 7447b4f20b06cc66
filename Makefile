# The two commands: `make run` and `make test`. Everything else is a helper of theirs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export REFERRAL_DATA_DIR ?= var

.PHONY: run test lint typecheck unit bench fuzz venv clean demo chromium screenshots

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/referral demo --cases 60 --reset
	REFERRAL_COOKIE_SECURE=false $(BIN)/referral serve   # plain http on loopback: the demo only

# The browser tests drive Debian's Chromium (Playwright from PyPI, no downloaded browser).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	@if [ ! -x /usr/bin/chromium ] || ! fc-list :lang=th 2>/dev/null | grep -q .; then \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium fonts-thai-tlwg; fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy referral_core adapters projections api tests bench
	$(BIN)/lint-imports

test: $(STAMP) lint chromium
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

# Refresh the README's screenshots (the browser tests otherwise save them under var/).
screenshots: $(STAMP) chromium
	REFERRAL_SCREENSHOT_DIR=docs/screenshots $(BIN)/python -m pytest -q -p no:cacheprovider tests/browser

bench: $(STAMP)
	$(BIN)/python -m bench

fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz REFERRAL_STATEFUL_EXAMPLES=300 REFERRAL_FUZZ_EXAMPLES=20 \
		$(BIN)/python -m pytest -q -p no:cacheprovider tests/integration/test_api_stateful.py \
		tests/integration/test_fuzz.py tests/unit

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
