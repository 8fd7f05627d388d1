# binance-exporter: every command a user or CI needs. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8080
DEMO_MARKET_PORT ?= 9900
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: help run demo fake-market test test-fast golden lint bench soak docker-build compose-up clean

help:
	@echo "make run      - install into $(VENV) and run the exporter against the real Binance (port $(PORT))"
	@echo "make demo     - run the exporter against the local fake market (no network needed)"
	@echo "make test     - install dev deps and run the unittest suite under coverage"
	@echo "make test-fast - the unit tests alone (no sockets, no sleeps; seconds)"
	@echo "make golden   - rewrite the golden /metrics pages after a deliberate change"
	@echo "make lint     - pylint the package and the tests"
	@echo "make bench    - benchmarks (not part of make test)"
	@echo "make soak     - long fault-injection soak (not part of make test)"

$(RUN_STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(DEV_STAMP): $(RUN_STAMP) requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

run: $(RUN_STAMP)
	$(VENV)/bin/binance-exporter --port $(PORT)

demo: $(DEV_STAMP)
	@$(PY) -m fake_binance --port $(DEMO_MARKET_PORT) --tick 1 & market=$$!; \
	trap 'kill $$market 2>/dev/null' EXIT INT TERM; \
	sleep 1; \
	echo "fake market on http://127.0.0.1:$(DEMO_MARKET_PORT); metrics on http://127.0.0.1:$(PORT)/metrics"; \
	$(VENV)/bin/binance-exporter --base-url http://127.0.0.1:$(DEMO_MARKET_PORT) --port $(PORT) \
		--update-interval 2 --refresh-interval 10

fake-market: $(DEV_STAMP)
	$(PY) -m fake_binance --port $(DEMO_MARKET_PORT) --tick 1

test: $(DEV_STAMP)
	$(PY) -m coverage erase
	$(PY) -m coverage run -m tests
	$(PY) -m coverage combine -q
	$(PY) -m coverage report --fail-under=90

test-fast: $(DEV_STAMP)
	$(PY) -m tests unit

golden: $(DEV_STAMP)
	UPDATE_GOLDEN=1 $(PY) -m unittest tests.unit.test_golden_pages

lint: $(DEV_STAMP)
	$(PY) -m pylint binance_exporter tests fake_binance bench

clean:
	rm -rf $(VENV) .coverage .coverage.* htmlcov *.egg-info

# Docker targets need a Docker engine (not needed for anything else).
IMAGE ?= binance-exporter:latest
docker-build:
	docker build -f docker/Dockerfile -t $(IMAGE) .

compose-up:
	docker compose -f docker/docker-compose.yml up --build

SOAK_MINUTES ?= 3
soak: $(DEV_STAMP)
	$(PY) -m tests.soak --minutes $(SOAK_MINUTES)

bench: $(DEV_STAMP)
	$(PY) -m bench
