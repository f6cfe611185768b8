# The two commands of the README. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	mkdir -p var
	$(BIN)/lms migrate
	$(BIN)/lms config apply examples/lms.toml
	$(BIN)/python examples/demo_passwords.py
	exec $(BIN)/lms run

# Two pytest workers: most of a test's time is waiting (on services, processes, Dovecot,
# Chromium), so two share the two cores well. A module stays on one worker (its fixtures are
# set up once); every test has its own ports, database, queue prefix and Dovecot instance.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/smtp_accept.py

clean:
	rm -rf $(VENV) var
