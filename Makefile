# One command for a newcomer: `make test` installs what the suite needs (Debian packages when
# run as root, a .venv with the Python packages) and runs the whole suite.
PYTHON := .venv/bin/python

.PHONY: test setup clean

test: setup
	$(PYTHON) -m pytest -ra

setup:
	bash Testing/setup.sh

clean:
	rm -rf .venv .cache .pytest_cache
