# Two commands set everything up on a fresh machine:  make run   /   make test
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test soak bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/hftbook run $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

soak: $(STAMP)
	$(PY) -m pytest -q -m soak $(ARGS)

bench: $(STAMP)
	$(VENV)/bin/hftbook bench engine $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
	find . -name __pycache__ -prune -exec rm -rf {} +
