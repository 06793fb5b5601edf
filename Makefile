# chat-outbox: `make demo` and `make test` do their own set-up from a clean clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install services browser promtool demo test test-unit test-integration lint typecheck bench chaos clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

services:  ## start PostgreSQL, MariaDB and RabbitMQ if they are down, and wait until they answer
	./scripts/services.sh

browser:  ## headless Chromium and its driver from the system's packages, for the dashboard's browser tests
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver)

promtool:  ## promtool (Debian's prometheus package), which checks deploy/prometheus/alerts.yml
	command -v promtool >/dev/null || \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus)

demo: install
	$(BIN)/chat-outbox demo

test: lint services browser promtool
	$(BIN)/pytest -q

test-unit: install
	$(BIN)/pytest -q -m unit

test-integration: install services browser promtool
	$(BIN)/pytest -q -m integration

lint: install
	$(BIN)/ruff check src tests bench chaos examples
	$(BIN)/ruff format --check src tests bench chaos examples
	$(BIN)/mypy typecheck/chat_outbox tests bench chaos examples

typecheck: install
	$(BIN)/mypy typecheck/chat_outbox tests bench chaos examples

bench: install services  ## chat-outbox against a hand-written asyncpg + aiokafka baseline
	$(BIN)/python -m bench

chaos: install services  ## 20k messages through kills, broker pauses/restart, dropped connections
	$(BIN)/python -m chaos $(CHAOS_ARGS)

clean:
	rm -rf $(VENV) chaos-results .mypy_cache .ruff_cache .pytest_cache .hypothesis build src/*.egg-info
	rm -f chat_outbox.sqlite3 chat_outbox.sqlite3-wal chat_outbox.sqlite3-shm
