# Two commands for a new user: `make demo` and `make test`. Everything else is for developers.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Test processes (pytest-xdist): most tests wait on real servers and real clocks, so three
# share a 2-core machine well; a test file stays in one process (its fixtures are built once).
TEST_JOBS ?= 3
DEPS   := pyproject.toml setup.cfg setup.py capture/_spanwalk.c capture/_json_bytes.h replay/_frame.c replay/_frame.h replay/_in_place.c replay/_fill.c replay/_fill.h

.PHONY: demo test test-all lint typecheck bench corpora clean

# The virtualenv is rebuilt only when the packaging files change.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-test: $(BIN)/python $(DEPS)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	@touch $@

# The [mitmproxy] extra needs Python >= 3.12: its import tests run it from a venv of its own,
# built where such a Python is found (tools/mitmproxy_venv.sh says where it looked).
$(VENV)/.installed-mitmproxy: $(BIN)/python $(DEPS) tools/mitmproxy_venv.sh
	tools/mitmproxy_venv.sh .venv-mitmproxy
	@touch $@

# The main job: the bundled ingestion corpus (100 traces/s, 30 s) replayed at 5x against the
# embedded sandbox, started and stopped by replay itself.
demo: $(VENV)/.installed-test
	$(BIN)/capture inspect $$($(BIN)/python -c 'import corpora; print(corpora.bundled_path())')
	$(BIN)/replay run --scale 5x --out $(VENV)/demo-results.json

test: $(VENV)/.installed-test $(VENV)/.installed-mitmproxy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile

# Every test, the slow ones too: timing bounds that need the machine to themselves.
test-all: $(VENV)/.installed-test $(VENV)/.installed-mitmproxy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -m ""

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# Benchmarks, not tests: each prints a table. peers.py installs nginx, wrk, hey (apt) and
# Locust (its own venv) on demand; all traffic stays on 127.0.0.1.
bench: $(VENV)/.installed-test
	$(BIN)/python bench/corpus.py --records 200000
	$(BIN)/python bench/recorder.py
	$(BIN)/python bench/templates.py
	$(BIN)/python bench/spool_formats.py
	$(BIN)/python bench/sandbox.py --pods 1 2 --usl
	$(BIN)/python bench/peers.py
	$(BIN)/python bench/schedule.py --search
	$(BIN)/python bench/scaling.py
	$(BIN)/python bench/memory.py --rate 20000
	$(BIN)/python bench/spooled.py
	$(BIN)/python bench/record.py

# Regenerate the bundled corpora with the commands recorded in corpora/README.md.
corpora: $(VENV)/.installed-test
	$(BIN)/python -m corpora.regenerate

clean:
	rm -rf $(VENV) .venv-mitmproxy build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
