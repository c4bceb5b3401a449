# The two commands: `make demo` and `make test`. Both set up what they need first and are
# fast when already set up (stamp files record what was installed from which inputs).
SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
CHECKOV_STAMP := .venv-checkov/.installed
PYTEST_ARGS ?=

.PHONY: demo test setup system-packages down

demo: setup
	$(PYTHON) -m scanning local demo

# pytest exits 5 when it collects no tests; that is not a failure of the suite.
test: setup
	$(PYTHON) -m pytest $(PYTEST_ARGS) || [ $$? -eq 5 ]

down:
	$(PYTHON) -m scanning local down

setup: $(VENV_STAMP) $(NPM_STAMP) $(CHECKOV_STAMP) system-packages

# checkov gets its own virtualenv: its pins would downgrade packageurl-python and packaging.
$(CHECKOV_STAMP): infra/requirements-checkov.txt
	@test -x .venv-checkov/bin/python || $$(command -v python3.11 || command -v python3) -m venv .venv-checkov
	.venv-checkov/bin/python -m pip install --quiet --disable-pip-version-check -r infra/requirements-checkov.txt
	@touch $@

# The project itself is installed editable, which puts the `acr-scan` command in .venv/bin.
$(VENV_STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@test -x $(PYTHON) || $$(command -v python3.11 || command -v python3) -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian packages: installed only when a command is missing (chromium: the dashboard's
# browser tests); the package lists are refreshed
# only when the install fails without them (a fresh image has none).
system-packages:
	@missing=""; \
	command -v docker-registry >/dev/null || missing="$$missing docker-registry"; \
	command -v skopeo >/dev/null || missing="$$missing skopeo"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  echo "installing$$missing"; \
	  $$sudo apt-get install -y --no-install-recommends $$missing \
	    || { $$sudo apt-get update && $$sudo apt-get install -y --no-install-recommends $$missing; }; \
	fi
