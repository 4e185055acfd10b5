# Two commands from a fresh clone: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
HOST ?= 127.0.0.1
PORT ?= 8000
# daphne refuses WebSocket frames and messages above this (the settings' WS_MAX_MESSAGE_BYTES).
WS_MAX_MESSAGE_BYTES ?= 65536

.PHONY: run test test-tools lint format install install-dev migrate seed serve worker bench clean chromium

# --- set-up -------------------------------------------------------------------
$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt constraints.txt $(BIN)/activate
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed node_modules/.installed
install-dev: $(VENV)/.installed-dev node_modules/.installed

# --- run ----------------------------------------------------------------------
migrate: install
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

serve:
	@echo "Serving on http://localhost:$(PORT)/  (admin: /admin/, API: /api/, schema: /api/schema/docs/)"
	$(BIN)/daphne -e tcp:port=$(PORT):interface=$(HOST):backlog=1024 --websocket-max-message-size $(WS_MAX_MESSAGE_BYTES) \
		--websocket-max-frame-size $(WS_MAX_MESSAGE_BYTES) incident_platform.asgi:application

run: seed serve

# The webhook worker (the Procfile's `worker`): run it beside `make run` to send outgoing webhooks.
worker: migrate
	$(PY) manage.py deliver_webhooks

# --- quality ------------------------------------------------------------------
# The browser tests drive Debian's Chromium. Install it when we can (root with
# apt-get); otherwise say the one command that does, and the suite skips them.
CHROMIUM := /usr/bin/chromium
chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing Debian's chromium for the browser tests (apt-get)..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
		|| echo "Could not install chromium; the browser tests will be skipped."; \
	else \
		echo "The browser tests need Debian's chromium, and will be skipped. Install it with:"; \
		echo "    sudo apt-get install -y chromium"; \
	fi

test: install-dev test-tools chromium
	$(BIN)/python -m tests.run $(ARGS)

# The fault tests put two daphne processes behind nginx (Debian's package).
# Installed here when it can be (root, apt-get); else that one test is skipped and says why.
test-tools:
	@if [ ! -x /usr/sbin/nginx ] && ! command -v nginx >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing nginx (Debian's package) for tests/test_fault_nginx.py"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null) \
	      || echo "Could not install nginx: tests/test_fault_nginx.py will be skipped"; \
	  else \
	    echo "nginx is not installed: tests/test_fault_nginx.py will be skipped (apt-get install nginx)"; \
	  fi; \
	fi

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install-dev
	$(PY) -m bench.live fanout --sizes 100,1000 --events 10
	$(PY) -m bench.live writes --seconds 5

clean:
	rm -rf $(VENV) node_modules staticfiles .test-db.sqlite3* .pytest_cache .mypy_cache .ruff_cache
