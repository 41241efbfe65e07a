# The two commands: `make run` (the whole bot, paper mode against the simulator)
# and `make test`. Each target sets itself up on a fresh machine: it creates
# .venv and installs the project into it first. Redis and Postgres come from
# deploy/embedded.py (started under .run/, stopped afterwards) unless REDIS_URL
# and DATABASE_URL are both set.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EMBEDDED := $(BIN)/python deploy/embedded.py --dir .run --
COMPOSE ?= docker compose
COMPOSE_FILE := deploy/docker-compose.yml
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: browser help install run test lint bench up down clean distclean

help:
	@echo "make run        the bot in paper mode against the simulator (dashboard: http://127.0.0.1:8000)"
	@echo "make test       the test suite (PYTEST_ARGS='-k name' to pick tests)"
	@echo "make lint       ruff check, ruff format --check, mypy"
	@echo "make bench      the benchmarks"
	@echo "make up / down  the Docker Compose stack (deploy/docker-compose.yml)"
	@echo "make clean      stop the embedded servers, remove .run/ and caches (distclean: .venv too)"

install: $(STAMP)

# Reinstalls only when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: $(STAMP)
	@echo "Paper mode against the simulator; dashboard at http://127.0.0.1:8000 (Ctrl-C stops all)"
	@# readable log lines for a person at a terminal, JSON lines otherwise
	$(BIN)/python -m services.simulator.keygen .run/keys paper
	if [ -t 1 ]; then export KHV_LOG_FORMAT=$${KHV_LOG_FORMAT:-console}; fi; \
	$(EMBEDDED) $(BIN)/honcho -f deploy/Procfile -e deploy/paper.env -d . start

test: $(STAMP) browser
	$(EMBEDDED) $(BIN)/pytest -q $(PYTEST_ARGS)

# The dashboard's browser test drives Debian's Chromium (Playwright's own download does
# not work here). Installed when missing and possible; without it that test skips.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	    && (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 \
	    && apt-get install -y -q chromium >/dev/null 2>&1)) \
	    || echo "chromium not installed: the dashboard's browser test will skip"; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy shared services bench deploy/embedded.py

bench: $(STAMP)
	$(EMBEDDED) $(BIN)/python -m bench

# deploy/.env holds the stack's settings and secrets; made from the example once,
# with a random dashboard token and database password.
deploy/.env: | deploy/.env.example
	umask 077 && sed -e "s/^DASHBOARD_TOKEN=.*/DASHBOARD_TOKEN=$$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')/" \
	    -e "s/^POSTGRES_PASSWORD=.*/POSTGRES_PASSWORD=$$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')/" \
	    -e "s/^GRAFANA_ADMIN_PASSWORD=.*/GRAFANA_ADMIN_PASSWORD=$$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')/" \
	    deploy/.env.example > $@
	@echo "wrote $@ from deploy/.env.example (edit it for demo or live trading)"

deploy/keys/paper.pem: | $(STAMP)
	$(BIN)/python -m services.simulator.keygen deploy/keys paper

up: deploy/.env deploy/keys/paper.pem
	$(COMPOSE) -f $(COMPOSE_FILE) up --build

down:
	$(COMPOSE) -f $(COMPOSE_FILE) down

clean:
	if [ -d .run ] && [ -x $(BIN)/python ]; then $(BIN)/python deploy/embedded.py --dir .run --stop; fi
	rm -rf .run .mypy_cache .ruff_cache .pytest_cache .hypothesis bench/out tests/artifacts
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) *.egg-info
