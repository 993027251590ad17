# Parley developer commands. Everything installs into .venv (and SAM CLI into .venv-sam) from pinned files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .venv-sam
STAMP := $(VENV)/.installed

.PHONY: install dev test unit integration e2e template lint typecheck fmt build validate bench clean browser screenshots

install: $(STAMP)

$(STAMP): requirements-dev.txt layers/common/requirements.txt constraints.txt pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Parley needs Python 3.11 or newer") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(SAM_VENV)/.installed: requirements-sam.txt constraints-sam.txt
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet -r requirements-sam.txt -c constraints-sam.txt
	touch $(SAM_VENV)/.installed

# The browser tests drive Debian's Chromium through Playwright (Playwright's own browser download is not
# used). Installed from Debian when missing; sudo only when not already root.
CHROMIUM := /usr/bin/chromium

browser: $(CHROMIUM)

$(CHROMIUM):
	SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$SUDO apt-get update && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
	test -x $(CHROMIUM)

dev: install
	$(BIN)/parley local

test: install $(SAM_VENV)/.installed browser lint typecheck
	PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" $(BIN)/python -m pytest

unit: install
	$(BIN)/python -m pytest tests/unit

integration: install
	$(BIN)/python -m pytest tests/integration

e2e: install browser
	$(BIN)/python -m pytest tests/e2e

template: install $(SAM_VENV)/.installed
	PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" $(BIN)/python -m pytest tests/template

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install
	$(BIN)/mypy layers/common/parley functions local bench tests/fakes.py

validate: install $(SAM_VENV)/.installed
	$(BIN)/cfn-lint template.yaml
	$(SAM_VENV)/bin/sam validate --lint --region us-east-1

# sam build needs python3.13 on PATH (the Lambda runtime); with pyenv, make that version visible.
PY313 := $(shell command -v pyenv >/dev/null 2>&1 && pyenv versions --bare 2>/dev/null | grep -E '^3\.13(\.[0-9]+)?$$' | tail -1)

build: $(SAM_VENV)/.installed
	$(if $(PY313),PYENV_VERSION=$(PY313):$$(pyenv version-name 2>/dev/null),) PATH="$(CURDIR)/$(SAM_VENV)/bin:$$PATH" \
		$(SAM_VENV)/bin/sam build --build-dir .aws-sam/build

# The README's screenshots of the list, a thread and compose, taken by the browser tests.
screenshots: install browser
	PARLEY_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest tests/e2e/browser

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache
