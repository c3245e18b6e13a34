# Two commands a new user needs: `make demo` (serve the demo) and `make test` (every check).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Local development: DEBUG on, SQLite and in-process tasks unless DATABASE_URL / REDIS_URL say otherwise.
DEV_ENV := DEBUG=1

.PHONY: install demo serve test pytest lint deploy-check compose-check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[ml,dev]'
	touch $(STAMP)

# A local-development .env (DEBUG on, a freshly generated SECRET_KEY), read by manage.py, the
# WSGI app and celery; variables set in the environment win. Made only when there is none: an
# existing .env is never overwritten. Git and Docker ignore it.
.env:
	@umask 077 && $(PYTHON) -c 'import secrets; print("# Local development only (written by make; never commit it).\n# Variables set in the environment win over this file.\nDEBUG=1\nSECRET_KEY=" + secrets.token_urlsafe(50))' > $@.tmp && mv $@.tmp $@
	@echo "wrote $@ for local development (DEBUG=1, a new SECRET_KEY)"

install: $(STAMP) .env

demo: install
	$(DEV_ENV) $(BIN)/python manage.py migrate --noinput
	$(DEV_ENV) $(BIN)/python manage.py seed_demo
	$(DEV_ENV) $(BIN)/python manage.py runserver 127.0.0.1:8000

# Lint and import contracts first (seconds), then the deployment check, then the tests.
test: install lint deploy-check compose-check pytest

pytest: install
	$(DEV_ENV) $(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

deploy-check: install
	DEBUG=0 SECRET_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))') \
	  ALLOWED_HOSTS=eval.example.org $(BIN)/python manage.py check --deploy --fail-level WARNING

compose-check:
	@if command -v docker-compose >/dev/null 2>&1; then \
	  SECRET_KEY=compose-check-dummy docker-compose -f docker-compose.yml config -q && \
	    echo "docker-compose.yml is valid"; \
	elif [ -n "$$CI" ]; then echo "docker-compose is missing in CI" >&2; exit 1; \
	else echo "docker-compose not installed: skipping the compose file check (CI installs it)"; fi

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache .ruff_cache
