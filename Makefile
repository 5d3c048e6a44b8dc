# The two commands of the README: `make run` and `make test`. Everything else is a helper of those.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install lock run test lint migrate

install: $(STAMP)

# The locked versions (requirements/development.txt: the product, its tests, the benchmarks; hash-checked), then the
# project itself, editable, without resolving anything again.
$(STAMP): pyproject.toml requirements/development.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r requirements/development.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $(STAMP)

# Re-resolve the lock files from pyproject.toml's direct pins (after changing one of them).
lock: install
	$(BIN)/python -m pip install -q pip-tools==7.6.2
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
		-o requirements/production.txt pyproject.toml
	$(BIN)/pip-compile -q --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
		--extra dev --extra bench -o requirements/development.txt pyproject.toml

migrate: install
	$(BIN)/python manage.py migrate --noinput

run: migrate
	$(BIN)/python manage.py run_embedded --demo

test: install
	bash scripts/test $(ARGS)

lint: install
	$(BIN)/ruff check .

# Re-extract and compile the console's translations (needs gettext; the compiled .mo files are committed).
# Template strings live in locale/ (project), Python strings in each app's locale/. Review fuzzy entries after.
messages: install
	$(BIN)/python manage.py makemessages -l zh_Hans --ignore ".venv/*" --ignore "tests/*" --ignore "var/*"
	$(BIN)/python manage.py compilemessages -l zh_Hans --ignore ".venv/*"

# --- Benchmarks and the fault run (README "Performance and reliability"); not part of `make test` ---
# Their dependencies (pyproject extra "bench") are part of the development lock.
.PHONY: bench faults faults-small bench-services

# PostgreSQL and Redis servers (apt-get, when this machine lacks them).
bench-services:
	bash scripts/system-packages postgresql redis

bench: install bench-services
	$(BIN)/python -m bench.bench $(ARGS)

# The full fault run: 10,000 payments through a chaotic sandbox while workers are killed and PostgreSQL and Redis
# are restarted and paused (twice each; ~13 min on 2 cores).
faults: install bench-services
	$(BIN)/python -m bench.faults --payments 10000 --terminals 40 --max-examples 100 --notifications 300 \
		--resolution-seconds 600 --name faults $(ARGS)

# The CI version: the same checks on 600 payments, a few minutes.
faults-small: install bench-services
	$(BIN)/python -m bench.faults --payments 600 --terminals 16 --max-examples 25 --notifications 60 \
		--kill-every 3,8 --outages 1 --outage-gap 8 --resolution-seconds 300 --name faults-small $(ARGS)
