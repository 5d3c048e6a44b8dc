# The two commands of the README: `make run` and `make test`. Everything else is a helper of those.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint migrate

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

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
