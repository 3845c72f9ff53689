# The two commands the README promises: `make run` and `make test`.
# Both work on a fresh clone: they create .venv and install the pinned requirements.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-nodeps.txt | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000
export DEBUG ?= true

.PHONY: install browser lint run test superuser migrate schema check-schema services-stop bench clean-var

$(STAMP): requirements.txt requirements-nodeps.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-nodeps.txt
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

## Chromium for the browser tests (Debian's package; Playwright cannot download one here),
## espeak-ng and sox for the synthesized audio fixtures (answer classification, simulations),
## nginx for the scale-out test (two web processes behind deploy/nginx.conf), and
## the Debian Reference in English, Spanish and German: the retrieval evaluation corpus
## (knowledge/evaluation, bench/knowledge_quality.py, knowledge/tests/test_retrieval_quality.py); the MyThes thesauri
## the bench's synonym variants read (knowledge/thesaurus.py; off by default, BENCH.md "Sixth pass").
DEBIAN_TEST_PACKAGES := chromium espeak-ng sox nginx debian-reference-en debian-reference-es debian-reference-de \
	mythes-de mythes-es mythes-en-us
browser:
	@if [ ! -x /usr/bin/chromium ] || ! command -v espeak-ng >/dev/null || ! command -v sox >/dev/null \
	    || [ ! -x /usr/sbin/nginx ] || [ ! -f /usr/share/debian-reference/ch02.de.html ] \
	    || [ ! -f /usr/share/mythes/th_de_DE_v2.idx ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEBIAN_TEST_PACKAGES) >/dev/null; \
	  else echo "note: some of $(DEBIAN_TEST_PACKAGES) are missing; tests that need them are skipped (apt-get install them)"; fi; \
	fi

## Run the platform: embedded Postgres+pgvector and Redis unless DATABASE_URL/REDIS_URL
## are set, migrations, then Daphne (HTTP+WebSocket), a Celery worker and beat. Ctrl-C stops all.
run: install
	$(PY) -m voiceplatform.devserver --host $(HOST) --port $(PORT)

## ruff (pyflakes, isort, bugbear, flake8-async, RUF006, pydocstyle on models/services) and
## mypy with django-stubs (strict on calls/media, calls/audio, calls/carriers, agents/bridges);
## configuration in pyproject.toml, mypy's cache under var/. The django-stubs plugin imports
## the settings but never connects: placeholder URLs keep it from starting embedded servers.
LINT_ENV := DATABASE_URL=$${DATABASE_URL:-postgres://lint@127.0.0.1:9/lint} REDIS_URL=$${REDIS_URL:-redis://127.0.0.1:9/0}
lint: install
	$(VENV)/bin/ruff check .
	$(LINT_ENV) $(VENV)/bin/mypy

## Lint first, then the whole suite against real Postgres+pgvector and Redis (embedded when
## the URLs are unset), then the time-sensitive modules again at chosen instants and machine
## time zones (voiceplatform/timematrix.py: a closed calling window, midnight UTC, the DST nights).
test: install browser lint
	$(PY) -m voiceplatform.embedded exec -- sh -c '$(PY) -m pytest $(PYTEST_ARGS) && $(PY) -m voiceplatform.timematrix $(PYTEST_ARGS)'

superuser: install
	$(PY) -m voiceplatform.embedded exec -- $(PY) manage.py createsuperuser

migrate: install
	$(PY) manage.py migrate

## Regenerate the committed OpenAPI schema (a test fails when it is stale).
schema: install
	$(PY) manage.py spectacular --file openapi.yaml --validate

services-stop:
	$(PY) -m voiceplatform.embedded stop

bench: install
	@ls bench/*.py

clean-var: services-stop
	rm -rf var
