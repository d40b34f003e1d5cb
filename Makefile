# Every target sets up what it needs from nothing: a venv with the pinned, tested versions.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum requirements.lock pyproject.toml | sha1sum | cut -c1-12)
export PYTHONPATH := $(CURDIR)
export MPLBACKEND := Agg

.PHONY: run test bench clean venv

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e . --config-settings editable_mode=compat
	rm -f $(VENV)/.installed-* && touch $@

run: venv
	$(BIN)/python -m aimcjax reproduce main --out runs/main --overwrite

test: venv
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

bench: venv
	$(BIN)/python benchmarks/bench_pulse.py

clean:
	rm -rf $(VENV) .pytest_cache
