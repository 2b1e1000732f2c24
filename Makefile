# quant-db-ops: every target does its own set-up (virtualenv, PostgreSQL binaries, local cluster) and is
# safe to run again. Quick start: `make demo` (the migration end to end) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON      ?= python3.11
VENV        := .venv
PY          := $(VENV)/bin/python
LOCAL       := $(CURDIR)/.local
PG_BIN      := /usr/lib/postgresql/15/bin
PG_PORT     ?= 55432
PG_DIR      := $(LOCAL)/pg
SAMPLE      ?= data/spock_local.db
SAMPLE_ARGS ?= --tickers-per-region 40 --days 500 --defects
AIRFLOW_PORT ?= 8080

export AIRFLOW_HOME := $(LOCAL)/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__DEFAULT_TIMEZONE := Asia/Seoul
export AIRFLOW_CONN_QUANT_POSTGRES := postgresql://postgres@127.0.0.1:$(PG_PORT)/quant_platform
export AIRFLOW_CONN_SPOCK_SQLITE := sqlite:///$(CURDIR)/$(SAMPLE)
export PYTHONPATH := $(CURDIR)/plugins

.PHONY: help demo test lint sample pg stop airflow bench clean system-deps browser-deps redis-deps venv screenshots

help:
	@echo "make demo     generate a sample SQLite DB and migrate it into a local PostgreSQL (started here)"
	@echo "make test     run the test suite (starts its own PostgreSQL and S3 endpoint)"
	@echo "make airflow  start a local Airflow (api-server, scheduler, dag-processor, triggerer) on this bundle"
	@echo "make screenshots  refresh docs/airflow-*.png from a real end-to-end run (Airflow UI in Chromium)"
	@echo "make bench    load/backup/quality benchmarks with ratios against baselines"
	@echo "make sample   (re)generate $(SAMPLE);  make stop   stop the local PostgreSQL"

# --- set-up ------------------------------------------------------------------------------------------
system-deps:
	@if [ ! -x "$(PG_BIN)/initdb" ] || ! command -v pg_dump >/dev/null; then \
	  if [ "$$(id -u)" -ne 0 ]; then \
	    echo "PostgreSQL 15 server binaries are missing ($(PG_BIN)). Run as root, or: sudo apt-get install -y postgresql"; \
	    exit 1; \
	  fi; \
	  echo "Installing PostgreSQL 15 from Debian's packages..."; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	fi
	@id postgres >/dev/null 2>&1 || { echo "the 'postgres' OS user is missing: apt-get install postgresql"; exit 1; }

# Headless Chromium + ChromeDriver from Debian's packages, for the end-to-end tests' browser part (they
# skip it, saying why, where the browser is missing).
browser-deps:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if [ "$$(id -u)" -ne 0 ]; then \
	    echo "Chromium is missing: the UI tests will be skipped. Run as root, or: sudo apt-get install -y chromium chromium-driver"; \
	  else \
	    echo "Installing Chromium and ChromeDriver from Debian's packages..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  fi; \
	fi

# Debian's redis-server, the Celery broker of the Celery/TLS end-to-end test (which skips, saying why, where
# it is missing). Nothing is started here: the test starts its own on a free loopback port.
redis-deps:
	@if [ ! -x /usr/bin/redis-server ]; then \
	  if [ "$$(id -u)" -ne 0 ]; then \
	    echo "redis-server is missing: the Celery end-to-end test will be skipped. Run as root, or: sudo apt-get install -y redis-server"; \
	  else \
	    echo "Installing redis-server from Debian's packages..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; \
	  fi; \
	fi

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: install Python 3.11"; exit 1; }
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt -c constraints.txt
	@touch $@

venv: $(VENV)/.installed

pg: system-deps venv
	@$(PY) scripts/pgcluster.py start --dir $(PG_DIR) --port $(PG_PORT)

stop:
	@[ -x $(PY) ] && $(PY) scripts/pgcluster.py stop --dir $(PG_DIR) --port $(PG_PORT) || true

$(SAMPLE): | venv
	@mkdir -p $(dir $(SAMPLE))
	$(PY) scripts/generate_sample.py --out $(SAMPLE) $(SAMPLE_ARGS) --force

sample: venv
	@mkdir -p $(dir $(SAMPLE))
	$(PY) scripts/generate_sample.py --out $(SAMPLE) $(SAMPLE_ARGS) --force

$(AIRFLOW_HOME)/.migrated: $(VENV)/.installed
	@mkdir -p $(AIRFLOW_HOME)
	@$(VENV)/bin/airflow db migrate >$(AIRFLOW_HOME)/db-migrate.log 2>&1 || \
	  { tail -20 $(AIRFLOW_HOME)/db-migrate.log; exit 1; }
	@touch $@

# --- the two commands of the quick start -------------------------------------------------------------
demo: pg $(SAMPLE) $(AIRFLOW_HOME)/.migrated
	@$(PY) scripts/demo.py --sample $(SAMPLE)

# The tiers, each a folder of tests/: dags (integrity), unit, compose (the stack's files), integration (a real
# PostgreSQL and S3 endpoint) and e2e, which starts a real Airflow (and Chromium; Redis and Celery workers for
# the Celery/TLS module) once per module; `-m "not slow"` leaves out every whole-DAG run.
test: system-deps browser-deps redis-deps venv
	$(PY) -m pytest

# --- the rest ----------------------------------------------------------------------------------------
lint: venv
	$(VENV)/bin/ruff check dags plugins scripts tests

# Airflow's metadata lives in a database `airflow` of the local PostgreSQL (LocalExecutor needs more than
# SQLite); the script migrates it.
airflow: pg $(SAMPLE)
	@$(PY) scripts/run_airflow.py --port $(AIRFLOW_PORT) --pg-port $(PG_PORT)

# The README's pictures: the end-to-end tests' browser part, writing into docs/ instead of a temp dir.
screenshots: system-deps browser-deps venv
	QUANTDBOPS_SCREENSHOT_DIR=docs $(PY) -m pytest tests/e2e -q -k "grid or task_log_page"

# Each benchmark starts its own PostgreSQL (and S3 endpoint) under .local/bench and prints ratios against a
# baseline measured in the same run; the quality one needs ~10M OHLCV rows (generated once, then reused). The
# pk-only load runs on each data shape of the same 1M rows (data/bench_1m*.db, generated once; ~3 min a shape).
bench: system-deps venv
	@command -v pgloader >/dev/null || { [ "$$(id -u)" -eq 0 ] && apt-get update -qq && apt-get install -y -qq pgloader >/dev/null; } || \
	  echo "pgloader is not installed (apt-get install pgloader): the load benchmark skips its leg"
	$(PY) scripts/bench_load.py
	$(PY) scripts/bench_load.py --target pk-only --shape all --repeat 3
	$(PY) scripts/bench_backup.py
	$(PY) scripts/bench_quality.py

clean: stop
	rm -rf $(LOCAL)
